"""Headless Chromium (the Debian package, driven by playwright's Python package: no browser
download), a live web app on loopback, and the daily run without Prefect, for browser tests."""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from flows.corpus import Corpus
from flows.models import Paper
from flows.render import Renderer
from flows.send import BatchReport, run_batch
from flows.settings import Settings
from flows.store import Store
from flows.subscribers import load_all
from flows.web import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def playwright_api() -> Any:
    """playwright.sync_api, or a skip (a failure under CI=true) where it is not installed."""
    try:
        from playwright import sync_api
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("playwright's Python package is not installed")
    return sync_api


def _need_chromium() -> None:
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).exists()):
        reason = f"headless Chromium is not installed ({CHROMIUM}, Debian package 'chromium')"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def launch_browser(playwright):
    """A browser whose pages each get their own viewport (``browser.new_page(viewport=…)``)."""
    _need_chromium()
    # headless=False: the headless mode is chosen by --headless=new in the arguments
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=False, args=CHROMIUM_ARGS)


def launch_chromium(playwright, profile: Path):
    """A browser context with a profile directory (cookies and storage kept there)."""
    _need_chromium()
    # headless=False: the headless mode is chosen by --headless=new in the arguments
    return playwright.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=False, args=CHROMIUM_ARGS,
    )


class LiveServer:
    """uvicorn serving create_app(settings) on 127.0.0.1 in a thread, on a socket bound
    beforehand (so the settings can name its URL)."""

    def __init__(self, sock: socket.socket, settings: Settings) -> None:
        config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def run_digests(settings: Settings, day: date, new_papers: list[Paper]) -> BatchReport:
    """One daily run, as the flow does it, without Prefect: store → rank → render → send."""
    subscribers, errors = load_all(settings.subscribers_dir, max_papers=settings.max_papers)  # as flows.tasks does
    assert not errors
    with Store(settings.db_path) as store:
        store.upsert_papers(new_papers)
        corpus = Corpus.load(store, settings, day)
        renderer = Renderer(settings.templates_dir, settings=settings)
        return run_batch(subscribers, store=store, corpus=corpus, renderer=renderer, settings=settings)


def run_digests_beside(*args: object) -> BatchReport:
    """`run_digests` on another thread: playwright's sync API keeps an event loop running on
    this one, and delivery starts its own with asyncio.run."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run_digests, *args).result()


def html_of(message: EmailMessage) -> str:
    return message.get_body(("html",)).get_content()


def link(message: EmailMessage, path: str) -> str:
    return re.search(rf'href="(http://127\.0\.0\.1:\d+/{path}/[^"]+)"', html_of(message)).group(1)


def mail_to(smtp_server, email: str) -> list[EmailMessage]:
    return [r.message for r in smtp_server.received if email in r.rcpt_tos]


# WCAG 2.x contrast of every visible run of text, from the computed styles.
CONTRAST = """() => {
  const rgba = s => { const p = s.match(/rgba?\\(([^)]+)\\)/)[1].split(',').map(Number);
                      return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const channel = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
  const lum = c => 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2]);
  const background = el => {
    for (; el; el = el.parentElement) {
      const c = rgba(getComputedStyle(el).backgroundColor);
      if (c[3] > 0) return c;
    }
    return [255, 255, 255, 1];
  };
  const runs = [];
  for (const el of document.body.querySelectorAll('*')) {
    const style = getComputedStyle(el);
    if (el.getClientRects().length === 0 || style.visibility === 'hidden') continue;
    if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const a = lum(rgba(style.color)), b = lum(background(el));
    runs.push({text: el.textContent.trim().slice(0, 40), cls: el.className,
               ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)});
  }
  return runs;
}"""


def low_contrast(page) -> list[dict]:
    """Every visible run of text below WCAG AA's 4.5:1 against its background."""
    return [run for run in page.evaluate(CONTRAST) if run["ratio"] < 4.5]
