"""The demo's inbox: a local SMTP server that files every message into a Maildir.

Each accepted message is added to ``mailbox.Maildir(directory)`` (readable by mutt,
``mailbox`` or any Maildir client) and its HTML part is also written to
``directory/html/<recipient>--<id>.html`` so a person can open the digest in a browser.
"""

from __future__ import annotations

import logging
import os
import mailbox
import re
import threading
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9@._-]+")


class LoopbackController(Controller):
    """An aiosmtpd `Controller` that accepts port 0 and exposes the port it was given."""

    def _trigger_server(self) -> None:
        # Controller probes its own port after binding; with port 0 learn the real one first
        if self.port == 0 and self.server is not None:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SinkNotRunning(Exception):
    """The mail sink has not been started."""


class MaildirSink:
    """A local SMTP server (background thread) storing what it accepts into a Maildir."""

    def __init__(self, directory: Path | str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.directory = Path(directory)
        self.host = host
        self._port = port
        self._controller: LoopbackController | None = None
        self._maildir: mailbox.Maildir | None = None
        self._lock = threading.Lock()
        self.received = 0

    @property
    def port(self) -> int:
        if self._controller is None:
            raise SinkNotRunning("start the sink to learn its port")
        return self._controller.port

    @property
    def html_dir(self) -> Path:
        return self.directory / "html"

    def start(self) -> MaildirSink:
        self.directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Maildir only lays out cur/new/tmp when it creates the directory itself (0700; its
        # messages 0600 under Paperboy's umask)
        self._maildir = mailbox.Maildir(self.directory, create=True)
        for sub in ("cur", "new", "tmp"):
            (self.directory / sub).mkdir(mode=0o700, exist_ok=True)
        self.html_dir.mkdir(mode=0o700, exist_ok=True)
        self.received = 0
        controller = LoopbackController(
            _SinkHandler(self), hostname=self.host, port=self._port, server_hostname="paperboy-sink"
        )
        controller.start()
        self._controller = controller
        log.info("mail sink listening on %s:%d, storing into %s", self.host, controller.port, self.directory)
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> MaildirSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def store(self, raw: bytes, recipient: str) -> str:
        """File one message; returns its Maildir key."""
        assert self._maildir is not None, "sink not started"
        with self._lock:
            key = self._maildir.add(raw)
            os.chmod(self.directory / "new" / key, 0o600)  # mailbox creates it 0666 less the umask
            message = BytesParser(policy=policy.default).parsebytes(raw)
            _write_html(message, self.html_dir / _html_name(message, recipient, key))
            self.received += 1
        return key


class _SinkHandler:
    """The aiosmtpd handler (kept bare: aiosmtpd treats every `auth_*`/`handle_*` name as a hook)."""

    def __init__(self, sink: MaildirSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # the client hears 250 only once the message is on disk
        recipient = envelope.rcpt_tos[0] if envelope.rcpt_tos else "unknown"
        key = self._sink.store(envelope.original_content, recipient)
        return f"250 OK queued as {key}"


def _html_name(message: EmailMessage, recipient: str, key: str) -> str:
    message_id = str(message.get("Message-ID", "")).strip("<> ")
    stem = message_id.split("@", 1)[0] or key
    name = _UNSAFE.sub("_", f"{recipient}--{stem}").strip("._")[:150]
    return f"{name}.html"


def _write_html(message: EmailMessage, path: Path) -> None:
    part = message.get_body(preferencelist=("html",))
    if part is not None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(part.get_content())
