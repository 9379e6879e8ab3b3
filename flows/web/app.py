"""The subscriber-facing web app: preferences with a live preview, unsubscribe, double opt-in.

Every page is reached through a signed link (see :mod:`flows.links`), never a login.
Every edit goes through :mod:`flows.subscribers`, the code the CLI uses.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from flows.archive import ArchiveError, decode_digest, paper_ids
from flows.links import (
    ConfirmLink,
    TokenError,
    digest_links,
    make_token,
    read_confirm_link,
    read_feedback_link,
    read_token,
    read_view_token,
    secret_key,
)
from flows.render import Renderer, safe_url
from flows.settings import Settings
from flows.store import Store, StoreError
from flows.subscribers import (
    FolderIndex,
    Subscriber,
    SubscriberError,
    SubscriberLocked,
    SubscriberNotFound,
    modify,
    set_active,
    with_default_max,
)
from flows.web import forms
from flows.web.preview import CorpusCache, Preview, preview
from flows.web.security import (
    BodyLimit,
    CsrfError,
    SecurityHeaders,
    check_csrf,
    check_same_origin,
    csrf_token,
)
from flows.web.signup import (
    CONFIRM_HOURS,
    Confirmation,
    Outbox,
    RateLimit,
    claim,
    confirm,
    confirm_link_used,
    release_confirm_link,
    send_confirmation,
    send_welcome,
    use_confirm_link,
)

log = logging.getLogger(__name__)

WEB_TEMPLATES = "web"  # folder under settings.templates_dir
STATIC_FILES = {"web.css": "text/css; charset=utf-8", "preferences.js": "text/javascript; charset=utf-8"}
MAX_TOKEN = 12_000  # characters; a confirm token with 50 long keywords is about 7 000
MAX_FIELDS = 20
MAX_PART = 16 * 1024
SUBSCRIBE_FORM = "subscribe-form"  # what the sign-up form's CSRF token is bound to
# The web view is the mail's own HTML: inline styles (no scripts, no forms, no frames).
WEB_VIEW_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                   "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

T = TypeVar("T")


class Site:
    """What every route shares: settings, signing key, templates, the preview's papers."""

    def __init__(self, settings: Settings, rate_limit: RateLimit) -> None:
        self.settings = settings
        self.key = secret_key(settings)
        self.templates = Path(settings.templates_dir) / WEB_TEMPLATES
        self.env = web_environment(self.templates)
        self.cache = CorpusCache(settings)
        self.rate_limit = rate_limit
        # Confirmation mails leave from one worker thread: a slow relay never holds a request.
        self.outbox = Outbox(self._send, stall_after=settings.smtp_timeout)
        self.root = urlsplit(settings.public_base_url).path.rstrip("/")  # served under a prefix?
        self._renderer: Renderer | None = None
        self._renderer_lock = threading.Lock()
        # Where each subscriber's file is: a page looks one up without reading the folder
        self.folder = FolderIndex(self.directory)

    def _send(self, mail: Confirmation) -> bool:
        """The outbox's mails: a sign-up's confirmation, or the welcome once confirmed."""
        if mail.kind == "confirm":
            return send_confirmation(self.env, self.settings, self.key, mail.email, list(mail.keywords))
        return send_welcome(self.env, self.settings, self.key, mail.email, mail.keywords,
                            again=mail.kind == "welcome back")

    @property
    def renderer(self) -> Renderer:
        """The digests' renderer, built on the first web view (it inlines the CSS once)."""
        with self._renderer_lock:
            if self._renderer is None:
                self._renderer = Renderer(self.settings.templates_dir, settings=self.settings)
            return self._renderer

    @property
    def directory(self) -> Path:
        return Path(self.settings.subscribers_dir)

    # The store, for the feedback pages (called off the event loop).

    def feedback_of(self, email: str) -> list[dict]:
        with Store(self.settings.db_path) as store:
            return store.feedback_of(email)

    def record_feedback(self, email: str, paper_id: str, verdict: str) -> None:
        with Store(self.settings.db_path) as store:
            store.record_feedback(email, paper_id, verdict)

    def forget_feedback(self, email: str, paper_id: str) -> None:
        with Store(self.settings.db_path) as store:
            store.remove_feedback(email, paper_id)

    def paper_summary(self, paper_id: str) -> dict:
        """Title and link of a stored paper (the id alone if it is not stored)."""
        with Store(self.settings.db_path) as store:
            found = store.paper(paper_id)
        return {"id": paper_id, "title": found.title if found else paper_id, "url": found.url if found else ""}

    def today(self) -> date:
        return datetime.now(ZoneInfo(self.settings.timezone)).date()

    def page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(root=self.root, **context)
        return HTMLResponse(html, status_code=status)

    def email_for(self, token: str, purpose: str) -> str:
        if len(token) > MAX_TOKEN:
            raise TokenError("this link is not valid")
        email = read_token(self.key, token, purpose)
        if not isinstance(email, str):
            raise TokenError("this link is not valid")
        return email

    async def form(self, request: Request, bound_to: str) -> dict[str, str]:
        """The posted fields, after the cross-site checks (CsrfError if they fail)."""
        fields = await read_form(request)
        check_same_origin(request, self.settings.public_base_url)
        check_csrf(self.key, bound_to, fields.get("csrf"))
        return fields


def web_environment(directory: Path) -> Environment:
    env = Environment(
        loader=FileSystemLoader(directory),
        autoescape=select_autoescape(enabled_extensions=("html.j2", "html"),
                                     disabled_extensions=("txt.j2",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["safe_url"] = safe_url  # paper links come from the sources: http(s) only
    return env


async def read_form(request: Request) -> dict[str, str]:
    form = await request.form(max_files=0, max_fields=MAX_FIELDS, max_part_size=MAX_PART)
    return {name: value for name, value in form.items() if isinstance(value, str)}


async def blocking(function: Callable[..., T], *args: Any) -> T:
    """File and database work off the event loop."""
    return await run_in_threadpool(function, *args)


def edit_refused(exc: SubscriberError) -> forms.FormError:
    """The library refused an edit the form had accepted (the file changed meanwhile):
    tell the subscriber why. A missing subscriber or a held lock is not theirs to fix."""
    if isinstance(exc, (SubscriberNotFound, SubscriberLocked)):
        raise exc
    detail = getattr(exc, "detail", None)
    return forms.FormError(detail.field, detail.message) if detail else forms.FormError("", str(exc))


def create_app(settings: Settings, *, rate_limit: RateLimit | None = None) -> FastAPI:
    """The web app for these settings (nothing global: two apps can live side by side)."""
    site = Site(settings, rate_limit or RateLimit.of(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(site.outbox.close)  # send what is queued, briefly

    app = FastAPI(title="Paperboy", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.site = site
    _error_handlers(app, site)
    _preference_routes(app, site)
    _feedback_routes(app, site)
    _unsubscribe_routes(app, site)
    _signup_routes(app, site)
    _web_view_routes(app, site)

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        return RedirectResponse(f"{site.root}/subscribe", status_code=303)

    # HEAD too: uptime checkers (UptimeRobot's default) send it, and read a 405 as "down".
    @app.api_route("/healthz", methods=["GET", "HEAD"], include_in_schema=False)
    async def health() -> Response:
        healthy, outbox = site.outbox.health()  # a stuck relay is not "ok"
        return Response(f"{'ok' if healthy else 'degraded'}\n{outbox}\n", media_type="text/plain",
                        status_code=200 if healthy else 503)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)  # browsers ask on every page; there is no icon

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in STATIC_FILES:
            raise StarletteHTTPException(404)
        return FileResponse(site.templates / name, media_type=STATIC_FILES[name],
                            headers={"Cache-Control": "public, max-age=3600"})

    # The last one added runs outermost: the body limit's 413 gets the security headers too.
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders, hsts=settings.public_base_url.startswith("https://"))
    return app


def _error_handlers(app: FastAPI, site: Site) -> None:
    def problem(status: int, title: str, message: str, hint: str = "") -> HTMLResponse:
        return site.page("message.html.j2", status, title=title, message=message, link=None, hint=hint)

    @app.exception_handler(TokenError)
    async def bad_token(request: Request, exc: TokenError) -> Response:
        # Most "not valid" links are whole links cut short: a mail program that wrapped a long
        # link of the plain-text part, or a copy that missed its end.
        hint = ("Links from a digest work only exactly as they were sent. If the link was split "
                "across two lines, copy all of it into the address bar; or open the same link "
                "in your most recent digest.") if "not valid" in str(exc) else ""
        return problem(403, "This link does not work", f"Sorry, {exc}.", hint)

    @app.exception_handler(CsrfError)
    async def cross_site(request: Request, exc: CsrfError) -> Response:
        return problem(403, "Form not accepted", f"Nothing was changed: {exc}.")

    @app.exception_handler(SubscriberNotFound)
    async def not_found(request: Request, exc: SubscriberNotFound) -> Response:
        return problem(404, "No subscription", "There is no subscription for this link any more. "
                       "You can sign up again from the subscribe page.")

    @app.exception_handler(SubscriberLocked)
    async def busy(request: Request, exc: SubscriberLocked) -> Response:
        return problem(503, "Busy", "Your preferences are being saved elsewhere; try again in a moment.")

    @app.exception_handler(SubscriberError)
    async def broken(request: Request, exc: SubscriberError) -> Response:
        log.error("web: subscriber file problem: %s", exc)  # the operator's log names the file
        return problem(409, "Cannot edit this subscription",
                       "Your subscription file needs the operator's attention; nothing was changed.")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "Not found", 405: "Not allowed", 400: "Bad request"}
        return problem(exc.status_code, titles.get(exc.status_code, "Error"),
                       "That page does not exist." if exc.status_code == 404 else str(exc.detail))


# -- preferences ------------------------------------------------------------------------------


def _preference_routes(app: FastAPI, site: Site) -> None:
    def page(token: str, subscriber: Subscriber, values: dict[str, Any], status: int = 200, *,
             shown: Preview | None = None, error: forms.FormError | None = None,
             saved: bool = False, feedback: list[dict] | None = None, undone: bool = False) -> HTMLResponse:
        return site.page(
            "preferences.html.j2", status, subscriber=subscriber, values=values, error=error,
            saved=saved, undone=undone, preview=shown, token=token, csrf=csrf_token(site.key, token),
            unsubscribe_url=f"{site.root}/unsubscribe/{make_token(site.key, subscriber.email, 'unsubscribe')}",
            weekdays=forms.WEEKDAYS, feedback=feedback or [],
        )

    async def marked(email: str) -> list[dict]:
        """The papers this subscriber marked more / less like this, newest first."""
        try:
            return await blocking(site.feedback_of, email)
        except StoreError as exc:
            log.warning("web: no feedback list, the database cannot be read: %s", exc)
            return []

    default_max = site.settings.max_papers  # PAPERBOY_MAX_PAPERS: a file without max_papers

    async def first_preview(subscriber: Subscriber) -> Preview | None:
        """The preview rendered into the page itself (of the file's subscriber as the daily
        run sees them); the page works without it."""
        try:
            return await blocking(preview, with_default_max(subscriber, default_max), site.cache,
                                  site.today(), site.key)
        except StoreError as exc:
            log.warning("web: no preview, the database cannot be read: %s", exc)
            return None

    def raw_values(fields: dict[str, str]) -> dict[str, Any]:
        values = {name: fields.get(name, "") for name in forms.LABELS}
        values["include_trending"] = fields.get("include_trending") in ("on", "true", "1")
        return values

    @app.get("/preferences/{token}", response_class=HTMLResponse)
    async def show(token: str, saved: str = "", undone: str = "") -> Response:
        email = site.email_for(token, "prefs")
        _, subscriber = await blocking(site.folder.find, email)
        shown = await first_preview(subscriber)
        return page(token, subscriber, forms.Preferences.of(subscriber, default_max).as_form(), shown=shown,
                    saved=saved == "1", feedback=await marked(email), undone=undone == "1")

    @app.post("/preferences/{token}/feedback", response_class=HTMLResponse)
    async def undo_feedback(token: str, request: Request) -> Response:
        """Undo one "more / less like this" (the list's button), then show the page again."""
        email = site.email_for(token, "prefs")
        fields = await site.form(request, token)
        paper_id = fields.get("paper", "")[:200]
        await blocking(site.forget_feedback, email, paper_id)
        log.info("web: feedback on %s undone for %s", paper_id, email)
        # "?undone=1": the page says it was undone (the item just vanishing says nothing to a screen reader)
        return RedirectResponse(f"{site.root}/preferences/{token}?undone=1#feedback-heading", status_code=303)

    @app.post("/preferences/{token}", response_class=HTMLResponse)
    async def save(token: str, request: Request) -> Response:
        email = site.email_for(token, "prefs")
        fields = await site.form(request, token)
        path, current = await blocking(site.folder.find, email)
        try:
            wanted = forms.parse_preferences(fields, default_max)
            forms.apply(current, wanted)  # validate before touching the file
            saved = await blocking(partial(modify, at=path), site.directory, email,
                                   lambda now: forms.changes(now, wanted, default_max))
        except forms.FormError as exc:
            # The preview keeps showing the saved keywords; the page points at the bad line.
            return page(token, current, raw_values(fields), 422, error=exc,
                        shown=await first_preview(current), feedback=await marked(email))
        except SubscriberError as exc:
            return page(token, current, raw_values(fields), 422, error=edit_refused(exc),
                        shown=await first_preview(current), feedback=await marked(email))
        log.info("web: preferences saved for %s", saved.email)
        # POST/redirect/GET: reloading the page shows it again instead of sending the form again.
        return RedirectResponse(f"{site.root}/preferences/{token}?saved=1", status_code=303)

    @app.post("/preferences/{token}/preview")
    async def live_preview(token: str, request: Request) -> Response:
        email = site.email_for(token, "prefs")
        fields = await site.form(request, token)
        _, current = await blocking(site.folder.find, email)
        try:
            candidate = forms.apply(current, forms.parse_preferences(fields, default_max))
        except forms.FormError as exc:
            return JSONResponse({"ok": False, "error": str(exc), "field": exc.field, "line": exc.line}, 422)
        shown = await blocking(preview, candidate, site.cache, site.today(), site.key)
        html = site.env.get_template("preview.html.j2").render(preview=shown, root=site.root)
        return JSONResponse({"ok": True, "html": html, **shown.as_json()})


# -- web view of a digest ---------------------------------------------------------------------


class DigestGone(Exception):
    """The digest a web view link names is not kept (any more)."""


def _web_view_routes(app: FastAPI, site: Site) -> None:
    def render(email: str, day: date) -> str:
        if (site.today() - day).days > site.settings.web_view_days:
            raise DigestGone()
        _, subscriber = site.folder.find(email)
        with Store(site.settings.db_path) as store:
            contents = store.digest_contents(subscriber.email, day)
            if contents is None:
                raise DigestGone()
            try:
                papers = store.papers_by_id(paper_ids(contents))
                digest = decode_digest(contents, subscriber.email, day, papers)
            except ArchiveError as exc:
                log.error("web: the digest of %s for %s cannot be read: %s", subscriber.email, day, exc)
                raise DigestGone() from None
        links = digest_links(site.settings, site.key, subscriber.email)
        return site.renderer.render_web(digest, subscriber, links)

    @app.exception_handler(DigestGone)
    async def gone(request: Request, exc: DigestGone) -> Response:
        days = site.settings.web_view_days
        return site.page("message.html.j2", 404, title="This digest is not kept any more", hint="",
                         message=f"Digests can be opened in a browser for {days} days after they "
                                 "were sent. The papers it listed are in the mail itself.", link=None)

    @app.get("/digest/{token}", response_class=HTMLResponse)
    async def web_view(token: str) -> Response:
        if len(token) > MAX_TOKEN:
            raise TokenError("this link is not valid")
        email, day = read_view_token(site.key, token)
        html = await blocking(render, email, day)
        return HTMLResponse(html, headers={"Content-Security-Policy": WEB_VIEW_POLICY})


# -- "more / less like this" ------------------------------------------------------------------


def _feedback_routes(app: FastAPI, site: Site) -> None:
    def page(action: str, email: str, verdict: str, paper: dict, state: str, token: str,
             status: int = 200) -> HTMLResponse:
        prefs = f"{site.root}/preferences/{make_token(site.key, email, 'prefs')}"
        return site.page("feedback.html.j2", status, email=email, verdict=verdict, paper=paper, state=state,
                         action=action, csrf=csrf_token(site.key, token), preferences_url=prefs)

    def check(token: str, paper_id: str, verdict: str, request: Request):
        """The link's subscriber, paper and verdict (TokenError unless all are signed), and the
        form's action: the very same link, so the POST is checked exactly like the GET."""
        sig = request.query_params.get("sig", "")
        link = read_feedback_link(site.key, token[:MAX_TOKEN], verdict, paper_id, sig)
        action = f"{site.root}/feedback/{token}/{quote(paper_id, safe='')}/{verdict}?sig={quote(sig, safe='')}"
        return link, action

    def recorded(email: str, paper_id: str) -> str:
        """This subscriber's verdict on this paper, or ""."""
        return next((item["verdict"] for item in site.feedback_of(email) if item["paper_id"] == paper_id), "")

    @app.get("/feedback/{token}/{paper_id:path}/{verdict}", response_class=HTMLResponse)
    async def ask(token: str, paper_id: str, verdict: str, request: Request, done: str = "") -> Response:
        # Mail scanners fetch every link in a message: a GET only asks. "done=1" is where a
        # confirmation lands (POST/redirect/GET): it says "Noted" if that verdict is stored.
        link, action = check(token, paper_id, verdict, request)
        paper = await blocking(site.paper_summary, link.paper_id)
        noted = done == "1" and await blocking(recorded, link.email, link.paper_id) == link.verdict
        return page(action, link.email, verdict, paper, "done" if noted else "ask", token)

    @app.post("/feedback/{token}/{paper_id:path}/{verdict}", response_class=HTMLResponse)
    async def record(token: str, paper_id: str, verdict: str, request: Request) -> Response:
        link, action = check(token, paper_id, verdict, request)
        await site.form(request, token)
        await blocking(site.record_feedback, link.email, link.paper_id, link.verdict)
        log.info("web: %s marked %s %s like this", link.email, link.paper_id, link.verdict)
        # POST/redirect/GET: reloading the "Noted" page does not ask to send the form again.
        return RedirectResponse(f"{action}&done=1", status_code=303)


# -- unsubscribe ------------------------------------------------------------------------------


def _unsubscribe_routes(app: FastAPI, site: Site) -> None:
    def page(token: str, email: str, state: str, status: int = 200, message: str = "",
             name: str = "") -> HTMLResponse:
        prefs = f"{site.root}/preferences/{make_token(site.key, email, 'prefs')}"
        return site.page("unsubscribe.html.j2", status, email=email, name=name, state=state,
                         token=token, csrf=csrf_token(site.key, token), preferences_url=prefs,
                         message=message)

    @app.get("/unsubscribe/{token}", response_class=HTMLResponse)
    async def ask(token: str) -> Response:
        # Mail scanners fetch every link in a message: a GET only asks.
        email = site.email_for(token, "unsubscribe")
        try:
            _, subscriber = await blocking(site.folder.find, email)
        except SubscriberNotFound:
            return page(token, email, "gone")
        return page(token, email, "ask" if subscriber.active else "done", name=subscriber.display_name)

    @app.post("/unsubscribe/{token}", response_class=HTMLResponse)
    async def unsubscribe(token: str, request: Request) -> Response:
        email = site.email_for(token, "unsubscribe")
        fields = await read_form(request)
        one_click = fields.get("List-Unsubscribe") == "One-Click"  # RFC 8058, from a mail provider
        if not one_click:
            check_same_origin(request, site.settings.public_base_url)
            check_csrf(site.key, token, fields.get("csrf"))
        try:
            await blocking(partial(set_active, at=await blocking(site.folder.locate, email)), site.directory,
                           email, False)
        except SubscriberNotFound:
            return page(token, email, "gone")
        log.info("web: unsubscribed %s%s", email, " (one-click)" if one_click else "")
        return page(token, email, "done")

    @app.post("/resubscribe/{token}", response_class=HTMLResponse)
    async def resubscribe(token: str, request: Request) -> Response:
        email = site.email_for(token, "unsubscribe")
        await site.form(request, token)
        try:
            await blocking(partial(set_active, at=await blocking(site.folder.locate, email)), site.directory,
                           email, True)
        except SubscriberNotFound:
            return page(token, email, "gone")
        except SubscriberError as exc:  # e.g. no keywords left: the model refuses an active file
            return page(token, email, "done", 422, message=edit_refused(exc).message)
        log.info("web: resubscribed %s", email)
        return page(token, email, "back")


# -- sign-up (double opt-in) ------------------------------------------------------------------


def _signup_routes(app: FastAPI, site: Site) -> None:
    def form_page(values: dict[str, str], status: int = 200, *, error: forms.FormError | None = None,
                  sent: bool = False) -> HTMLResponse:
        return site.page("subscribe.html.j2", status, values=values, error=error, sent=sent,
                         csrf=csrf_token(site.key, SUBSCRIBE_FORM), hours=CONFIRM_HOURS)

    @app.get("/subscribe", response_class=HTMLResponse)
    async def subscribe_form(sent: str = "") -> Response:
        return form_page({"email": "", "keywords": ""}, sent=sent == "1")

    @app.post("/subscribe", response_class=HTMLResponse)
    async def subscribe(request: Request) -> Response:
        fields = await site.form(request, SUBSCRIBE_FORM)
        values = {"email": fields.get("email", "")[:forms.MAX_EMAIL_CHARS],
                  "keywords": fields.get("keywords", "")[:forms.MAX_LIST_CHARS]}
        try:
            email = forms.text_field(fields, "email", forms.MAX_EMAIL_CHARS).strip()
            keywords = forms.keyword_list(forms.text_field(fields, "keywords"))
            wanted = forms.validated({"email": email, "keywords": keywords})
        except forms.FormError as exc:
            return form_page(values, 422, error=exc)
        # The same answer whether mailed, rate-limited or already subscribed: the page
        # must not tell a stranger anything about an address.
        client = request.client.host if request.client else None
        refused = await blocking(claim, site.settings, site.key, wanted.email, site.rate_limit, None, client)
        if not refused:
            site.outbox.submit(wanted.email, list(wanted.keywords))
        else:
            log.info("web: sign-up for %s refused by the %s limit", wanted.email, refused)
        # POST/redirect/GET; the address stays out of the URL (and so out of logs and history).
        return RedirectResponse(f"{site.root}/subscribe?sent=1", status_code=303)

    def confirm_page(token: str, email: str, keywords: list[str], state: str,
                     status: int = 200, error: forms.FormError | None = None) -> HTMLResponse:
        prefs = f"{site.root}/preferences/{make_token(site.key, email, 'prefs')}"
        return site.page("confirm.html.j2", status, email=email, keywords=keywords, state=state, token=token,
                         csrf=csrf_token(site.key, token), error=error, preferences_url=prefs)

    used = TokenError("this link has been used already; to change your subscription use the "
                      "link in your digest, or sign up again")

    def read(token: str) -> ConfirmLink:
        if len(token) > MAX_TOKEN:
            raise TokenError("this link is not valid")
        return read_confirm_link(site.key, token)

    @app.get("/confirm/{token}", response_class=HTMLResponse)
    async def ask_confirm(token: str) -> Response:
        link = read(token)
        if await blocking(confirm_link_used, site.settings, link.nonce):
            raise used
        return confirm_page(token, link.email, link.keywords, "ask")

    @app.post("/confirm/{token}", response_class=HTMLResponse)
    async def do_confirm(token: str, request: Request) -> Response:
        link = read(token)
        email, keywords = link.email, link.keywords
        await site.form(request, token)
        try:
            wanted = forms.validated({"email": email, "keywords": keywords})
        except forms.FormError as exc:  # the keyword rules changed since the sign-up
            return confirm_page(token, email, keywords, "ask", 422, error=exc)
        # Single use: a later click must not undo an unsubscribe or edits made since.
        if not await blocking(use_confirm_link, site.settings, link.nonce):
            raise used
        try:
            how = await blocking(confirm, site.directory, wanted.email, list(wanted.keywords))
        except BaseException:
            await blocking(release_confirm_link, site.settings, link.nonce)
            raise
        log.info("web: sign-up confirmed for %s (%s)", wanted.email, how)
        site.outbox.submit(wanted.email, list(wanted.keywords),
                           "welcome back" if how == "reactivated" else "welcome")
        return confirm_page(token, wanted.email, list(wanted.keywords), how)
