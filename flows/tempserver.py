"""The temporary Prefect API server a command runs its flow against, when no PREFECT_API_URL
is configured (`paperboy run`, `backfill`, `demo`).

Prefect would start one by itself, as a plain child of the run: a terminal's Ctrl-C then
reached the server too, which died under the run; every state change and log line of the
flow then retried against nothing for minutes (issue 13: 3-4 minutes to exit), and a
SIGKILLed run left it behind (≈ 220 MB). This one is started by the command itself:

* in a session of its own, so the terminal's SIGINT never reaches it, with SIGTERM blocked,
  so a service manager's SIGTERM to every process of the service does not either;
* dying with the run (flows/children.py), so a killed run leaves no server behind;
* stopped last, after the flow has recorded its final state and Prefect's log and event
  workers have drained;
* watched: if it dies during the run, the run is asked to stop (flows/stopping.py) and
  Prefect's client stops retrying against it, so the run ends in seconds with what it
  recorded, instead of retrying for minutes.

Its database is Prefect's own under PREFECT_HOME (var/prefect), as with Prefect's server.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import httpx

from flows.stopping import request_stop, stop_requested

log = logging.getLogger(__name__)

SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
PORT_IN_USE = 3  # uvicorn's exit code when it cannot bind


class ServerError(RuntimeError):
    """The temporary Prefect server did not start."""


class ServerStartInterrupted(ServerError):
    """A stop was requested while the temporary server was starting."""


def configured_api_url() -> str | None:
    """PREFECT_API_URL from Prefect's settings if Prefect is loaded, else from the environment
    or the active Prefect profile (read without importing Prefect, which freezes its settings
    at import)."""
    if "prefect.settings" in sys.modules:
        from prefect.settings import PREFECT_API_URL

        return PREFECT_API_URL.value() or None
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    home = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect")).expanduser()
    profiles_path = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
    try:
        profiles = tomllib.loads(profiles_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active") or "ephemeral"
    value = profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")
    return str(value) if value else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TemporaryServer:
    """``with TemporaryServer() as server:`` PREFECT_API_URL points at it inside the block."""

    def __init__(self, startup_timeout: float = 90.0, poll: float = 0.2) -> None:
        self.startup_timeout, self.poll = startup_timeout, poll
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.died: int | None = None  # its exit code, if it stopped while in use
        self._stopping = threading.Event()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _spawn(self) -> subprocess.Popen:
        self.port = free_port()
        env = {**os.environ, **SERVER_ENV}
        env.pop("PREFECT_API_URL", None)
        command = [sys.executable, "-m", "flows.children", str(os.getpid()), "uvicorn",
                   "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
                   "--port", str(self.port), "--log-level", "error", "--lifespan", "on"]
        from flows.children import terminations_blocked

        with terminations_blocked():  # systemd's stop signals every process: not this one
            return subprocess.Popen(command, env=env, start_new_session=True, stdin=subprocess.DEVNULL)

    def start(self) -> "TemporaryServer":
        started = time.monotonic()
        self.process = self._spawn()
        with httpx.Client(timeout=2) as client:
            while True:
                if stop_requested():  # Ctrl-C while it starts: no run to record anything for
                    self.stop()
                    raise ServerStartInterrupted(stop_requested())
                code = self.process.poll()
                if code == PORT_IN_USE:  # someone took the port meanwhile: another one
                    self.process = self._spawn()
                    continue
                if code is not None:
                    raise ServerError(f"the temporary Prefect server exited with code {code} while "
                                      "starting; see the lines above")
                try:
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() - started > self.startup_timeout:
                    self.stop()
                    raise ServerError(f"the temporary Prefect server did not answer within "
                                      f"{self.startup_timeout:.0f} s")
                time.sleep(0.1)
        log.info("temporary Prefect server on %s (pid %d) up in %.1f s", self.api_url,
                 self.process.pid, time.monotonic() - started)
        threading.Thread(target=self._watch, name="prefect-server-watch", daemon=True).start()
        return self

    def _watch(self) -> None:
        process = self.process
        while process is not None and not self._stopping.wait(self.poll):
            code = process.poll()
            if code is not None:
                self.died = code
                request_stop("the Prefect server stopped")
                from flows.signals import announce

                announce(f"the temporary Prefect server (pid {process.pid}) stopped with code "
                         f"{code}: stopping the run; what it reached is recorded")
                give_up_on_prefect_api()
                return

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)  # it keeps SIGTERM blocked (see _spawn); uvicorn stops on SIGINT
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> "TemporaryServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def give_up_on_prefect_api() -> None:
    """The API is gone for good: Prefect's client, log and event workers stop retrying it."""
    os.environ["PREFECT_CLIENT_MAX_RETRIES"] = "0"
    try:
        from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, get_current_settings

        settings = get_current_settings()
        object.__setattr__(settings.client, "max_retries", 0)
        del PREFECT_CLIENT_MAX_RETRIES
    except Exception:  # a Prefect without these: its own retries apply  # noqa: BLE001
        pass


def drain_prefect(timeout: float = 5.0) -> None:
    """Let Prefect's log and event workers send what they hold (bounded), before the server
    they send to is stopped."""
    if "prefect" not in sys.modules:
        return

    def drain() -> None:
        import inspect

        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker
        from prefect.utilities.asyncutils import run_coro_as_sync

        async def both() -> None:
            try:
                result = APILogWorker.instance().drain()
                if inspect.isawaitable(result):
                    await result
            except RuntimeError:  # never started
                pass
            result = EventsWorker.drain_all()
            if inspect.isawaitable(result):
                await result

        try:
            run_coro_as_sync(both())
        except Exception as exc:  # noqa: BLE001 - best effort at exit
            log.debug("draining Prefect's workers: %s", exc)

    worker = threading.Thread(target=drain, name="prefect-drain", daemon=True)
    worker.start()
    worker.join(timeout)
