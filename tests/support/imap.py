"""A small IMAP4rev1 server on loopback holding one mailbox, for `paperboy bounces --imap`.

It speaks the part of RFC 3501 a client that reads and flags messages uses (CAPABILITY,
STARTTLS, LOGIN, SELECT, UID SEARCH, UID FETCH BODY.PEEK[], UID STORE +FLAGS, NOOP, LOGOUT)
over a real socket, optionally with implicit TLS or STARTTLS, so the client under test is the
standard library's imaplib exactly as in production. It records the commands it got.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest


@dataclass
class StoredMessage:
    uid: int
    raw: bytes
    flags: set[str] = field(default_factory=set)


class IMAPServer:
    """One user, one folder; ``tls`` None (plain, STARTTLS offered when ``context`` is
    given), "tls" (implicit TLS)."""

    def __init__(self, user: str = "bounces", password: str = "imap-password-0123456789",
                 folder: str = "INBOX", context: ssl.SSLContext | None = None, tls: str | None = None):
        self.user, self.password, self.folder = user, password, folder
        self.context, self.tls = context, tls
        self.messages: list[StoredMessage] = []
        self.commands: list[str] = []
        self.logins = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    def add(self, raw: bytes, flags: set[str] | None = None) -> int:
        with self._lock:
            uid = len(self.messages) + 1
            self.messages.append(StoredMessage(uid, raw, set(flags or ())))
            return uid

    def start(self) -> "IMAPServer":
        self._thread.start()
        ssl_context = self.context if self.tls == "tls" else None
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._session, "127.0.0.1", 0, ssl=ssl_context), self._loop)
        self._server = started.result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    # one client connection

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state = {"auth": False, "selected": False, "tls": self.tls == "tls"}
        try:
            writer.write(b"* OK [CAPABILITY IMAP4rev1] paperboy test IMAP ready\r\n")
            while line := await reader.readline():
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                with self._lock:
                    self.commands.append(re.sub(r'(?i)^(\S+ LOGIN \S+) .*', r"\1 ***", text))
                tag, _, rest = text.partition(" ")
                name, _, args = rest.partition(" ")
                name = name.upper()
                if name == "UID":
                    name, _, args = args.partition(" ")
                    name = "UID " + name.upper()
                if name == "STARTTLS" and self.context is not None and not state["tls"]:
                    writer.write(f"{tag} OK begin TLS now\r\n".encode())
                    await writer.drain()
                    await writer.start_tls(self.context)
                    state["tls"] = True
                    continue
                reply = self._command(tag, name, args, state)
                writer.write(reply)
                await writer.drain()
                if name == "LOGOUT":
                    break
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def _command(self, tag: str, name: str, args: str, state: dict) -> bytes:
        ok = f"{tag} OK {name} completed\r\n".encode()
        if name == "CAPABILITY":
            extra = " STARTTLS" if self.context is not None and not state["tls"] else ""
            return f"* CAPABILITY IMAP4rev1{extra} AUTH=PLAIN\r\n".encode() + ok
        if name == "NOOP":
            return ok
        if name == "LOGOUT":
            return b"* BYE see you\r\n" + ok
        if name == "LOGIN":
            user, _, password = args.partition(" ")
            password = _unquote(password)
            if (_unquote(user), password) != (self.user, self.password):
                return f"{tag} NO [AUTHENTICATIONFAILED] invalid credentials\r\n".encode()
            state["auth"] = True
            with self._lock:
                self.logins += 1
            return ok
        if not state["auth"]:
            return f"{tag} BAD log in first\r\n".encode()
        if name in ("SELECT", "EXAMINE"):
            if _unquote(args) != self.folder:
                return f"{tag} NO [NONEXISTENT] no folder {args}\r\n".encode()
            state["selected"] = True
            with self._lock:
                count = len(self.messages)
            return (f"* {count} EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY 1] UIDs valid\r\n"
                    f"* FLAGS (\\Seen \\Deleted)\r\n{tag} OK [READ-WRITE] SELECT completed\r\n").encode()
        if not state["selected"]:
            return f"{tag} BAD select a folder first\r\n".encode()
        if name == "UID SEARCH":
            with self._lock:
                unseen_only = args.strip().upper() == "UNSEEN"
                uids = [m.uid for m in self.messages if not (unseen_only and "\\Seen" in m.flags)]
            return f"* SEARCH {' '.join(map(str, uids))}".rstrip().encode() + b"\r\n" + ok
        if name == "UID FETCH":
            uid_text, _, _ = args.partition(" ")
            message = self._find(uid_text)
            if message is None:
                return ok
            head = f"* {message.uid} FETCH (UID {message.uid} BODY[] {{{len(message.raw)}}}\r\n".encode()
            return head + message.raw + b")\r\n" + ok
        if name == "UID STORE":
            uid_text, _, change = args.partition(" ")
            message = self._find(uid_text)
            if message is None:
                return ok
            with self._lock:
                if change.upper().startswith("+FLAGS"):
                    message.flags |= set(re.findall(r"\\\w+", change))
                flags = " ".join(sorted(message.flags))
            return f"* {message.uid} FETCH (UID {message.uid} FLAGS ({flags}))\r\n".encode() + ok
        return f"{tag} BAD unknown command {name}\r\n".encode()

    def _find(self, uid_text: str) -> StoredMessage | None:
        with self._lock:
            return next((m for m in self.messages if str(m.uid) == uid_text), None)


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r'\\(.)', r"\1", text[1:-1])
    return text


@pytest.fixture
def imap_server_factory() -> Iterator:
    servers: list[IMAPServer] = []

    def start(**kwargs) -> IMAPServer:
        server = IMAPServer(**kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
