"""``paperboy web``: the subscribers' pages (preferences, unsubscribe, subscribe).

- ``create_app(settings)`` builds the FastAPI app; nothing is read from globals.
- ``web_command`` is the Typer command (the CLI mounts it as ``paperboy web``).

Modules: :mod:`~flows.web.app` (routes), :mod:`~flows.web.forms` (form → validated
values), :mod:`~flows.web.preview` (the live preview), :mod:`~flows.web.signup` (double
opt-in and its rate limit), :mod:`~flows.web.security` (CSRF, origin check, headers).
"""

from __future__ import annotations

import logging

import typer

from flows.web.app import create_app
from flows.web.security import RedactTokens

__all__ = ["create_app", "web_command"]


def web_command(
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
    port: int = typer.Option(8000, "--port", help="port to listen on"),
) -> None:
    """Serve the preferences, unsubscribe and subscribe pages (put HTTPS in front of it)."""
    import uvicorn

    from flows.settings import Settings

    app = create_app(Settings())
    config = uvicorn.Config(app, host=host, port=port, proxy_headers=True, server_header=False)
    # uvicorn sets up its loggers in Config(); the links' tokens must not reach the access log
    logging.getLogger("uvicorn.access").addFilter(RedactTokens())
    logging.getLogger("uvicorn.error").addFilter(RedactTokens())
    uvicorn.Server(config).run()
