"""Digest → email: Jinja2 templates (HTML + plain text), CSS inlined, one EmailMessage.

Inlining CSS with premailer costs about 4 ms per email, some 20x the Jinja render, so the
Renderer inlines the HTML template's *source* once, at load time: every Jinja construct is
swapped for an opaque token that lxml and premailer leave alone, premailer runs once, the
tokens are swapped back, and that result is the template actually rendered. This is exact
as long as the CSS only matches markup written literally in the template (see digest.css).
Where it cannot be exact (structural selectors, a variable in a class/id/style attribute,
includes or macros, markup the HTML parser rearranges) the Renderer says why in the log and
inlines every email instead: slower, never wrong. The result is stored beside the templates
(templates/digest.inlined.json, `make inlined`) with a key of its sources: a Renderer whose
template, CSS and inliner match reads it and never imports premailer, lxml or cssutils
(≈ 12 MB in each render process); otherwise it inlines again as above.

The message comes as an EmailMessage (`render_message`) or as the bytes SMTP sends
(`render_bytes`, what the pipeline uses): the same headers and parts, the bytes written
directly, since the email package's header objects and quoted-printable encoder cost more
than rendering the digest. Both are 7-bit: the plain text part is quoted-printable unless it
is ASCII; the HTML part writes non-ASCII characters as character references, so it goes as
it is ("7bit", lines of at most 998 characters), else quoted-printable too.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import logging
import re
import secrets
from datetime import date, datetime, timezone
from email import policy as email_policy
from email.errors import HeaderParseError
from email.header import Header
from email.headerregistry import Address, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from jinja2 import (
    ChoiceLoader,
    DictLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    select_autoescape,
)

from flows.cards import (
    NO_STYLES,
    Styles,
    abstract_snippet,
    digest_context,
    format_day,
    highlight,
    one_line,
    safe_url,
    wrap,
)
from flows.fragments import CardsBlock
from flows.links import DigestLinks
from flows.models import Digest

if TYPE_CHECKING:  # annotations only: a render process runs without pydantic (flows/shipped.py)
    from flows.settings import Settings
    from flows.subscribers import Subscriber

__all__ = [  # the card helpers are used from here too
    "Renderer", "RenderError", "PreinlineError", "abstract_snippet", "ascii_html",
    "digest_context", "digest_css", "encode_body", "encode_part", "format_day", "highlight", "inline_css", "preinline_template",
    "recipient", "safe_url", "wrap",
]

log = logging.getLogger(__name__)

HTML_TEMPLATE = "digest.html.j2"
TEXT_TEMPLATE = "digest.txt.j2"
CSS_FILE = "digest.css"
INLINED_TEMPLATE = "digest.inlined.html.j2"  # the pre-inlined HTML, served from memory
CARDS_BLOCK = "cards"  # the HTML template's block of the card loop (see flows/fragments.py)
# The pre-inlined HTML and the probed styles as `write_inlined` stored them, with a key of the
# template, the CSS and the inliner's versions: a Renderer whose sources match reads them
# instead of importing premailer, lxml and cssutils (≈ 12 MB in every render process).
INLINED_FILE = "digest.inlined.json"
_INLINER = ("premailer", "cssutils", "lxml")

HTML_BUDGET = 90 * 1024  # bytes of the HTML part at most: Gmail clips after about 102 KB

InlineMode = Literal["pre-inlined", "per-email"]


class RenderError(Exception):
    """A digest cannot be turned into a valid, safe email (bad address or link)."""


class PreinlineError(Exception):
    """The HTML template cannot be CSS-inlined once at load time without changing its output."""


_MAILTO = re.compile(r"mailto:[^\s<>,\"\\\x00-\x1f\x7f]+\Z")


def _check_links(links: DigestLinks) -> None:
    if not safe_url(links.unsubscribe) or not safe_url(links.preferences):
        raise RenderError("the unsubscribe and preferences links must be plain http(s) URLs")
    if not _MAILTO.match(links.unsubscribe_mailto) or not links.unsubscribe_mailto.isascii():
        raise RenderError("the unsubscribe mailto link is not a plain mailto: URL")


# ---------------------------------------------------------------- CSS inlining

_PREMAILER_OPTIONS: dict[str, Any] = {
    "base_url": None,  # no URL rewriting
    "disable_link_rewrites": True,
    "allow_network": False,
    "allow_loading_external_files": False,
    # @media and :hover rules stay behind in a <style> block (with !important so they
    # beat the inline styles); everything else lives only in style attributes.
    "keep_style_tags": False,
    "exclude_pseudoclasses": True,
    "remove_classes": False,
    # bgcolor/width/align attributes are for table layouts; this one is block-based.
    "disable_basic_attributes": ["align", "valign", "bgcolor", "width", "height"],
    "cssutils_logging_level": logging.CRITICAL,  # vendor properties are not warnings here
}


_STYLE_ATTR = re.compile(r"""style=(["'])(.*?)\1""", re.S)
_STYLE_SPACE = re.compile(r"([;:,])\s+")


def _tight_style(found: re.Match[str]) -> str:
    quote, style = found.group(1), found.group(2)
    return "style=" + quote + _STYLE_SPACE.sub(r"\1", style) + quote


@functools.lru_cache(maxsize=4)
def digest_css(templates_dir: Path) -> str:
    """The digest's stylesheet, which the confirmation and welcome mails share."""
    return (Path(templates_dir) / CSS_FILE).read_text(encoding="utf-8")


def inline_css(html: str, css: str) -> str:
    """``html`` with ``css`` applied as style attributes: one premailer pass per document.
    The attributes are written without the spaces premailer puts after ";" and ":" (a
    digest repeats them in every card: a tenth of its bytes)."""
    import premailer  # with requests, cssutils and lxml: ~14 MB a process that never inlines skips

    inlined = premailer.transform(html, css_text=css, **_PREMAILER_OPTIONS)
    return _STYLE_ATTR.sub(_tight_style, inlined)


_JINJA_CONSTRUCT = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_TOKEN = re.compile(r"<!--PBXS(\d+)X-->|PBXE(\d+)X")
_DYNAMIC_STYLING_ATTR = re.compile(
    r"""\b(?:class|id|style)\s*=\s*(?:"[^"]*|'[^']*|[^\s>]*)PBX[ES]\d+X""", re.IGNORECASE
)
_UNSUPPORTED_TAG = re.compile(r"\{%[-+]?\s*(include|import|from|extends|macro|call|raw)\b")
_STRUCTURAL_SELECTOR = re.compile(r"[+~\[]|:(?:first|last|nth|only)-|:not\(|:empty|:has\(")


def _check_preinlinable(source: str, css: str) -> None:
    if "PBX" in source:
        raise PreinlineError("the template contains the placeholder prefix 'PBX'")
    tag = _UNSUPPORTED_TAG.search(source)
    if tag:
        raise PreinlineError(f"'{{% {tag.group(1)} %}}' brings in markup the inliner cannot see")
    import cssutils  # see inline_css

    for rule in cssutils.parseString(css, validate=False):
        if rule.type == rule.STYLE_RULE and _STRUCTURAL_SELECTOR.search(rule.selectorText):
            raise PreinlineError(
                f"selector {rule.selectorText!r} depends on the rendered structure, not the template"
            )


def _tokenise(source: str, originals: list[str]) -> str:
    blanked = _JINJA_CONSTRUCT.sub(lambda found: " " * len(found.group()), source)

    def swap(found: re.Match[str]) -> str:
        index = len(originals)
        originals.append(found.group())
        inside_tag = blanked.rfind("<", 0, found.start()) > blanked.rfind(">", 0, found.start())
        # Comments survive anywhere between elements; text tokens anywhere inside text/attributes.
        if found.group().startswith("{{") or inside_tag:
            return f"PBXE{index:04d}X"
        return f"<!--PBXS{index:04d}X-->"

    tokenised = _JINJA_CONSTRUCT.sub(swap, source)
    if any(mark in tokenised for mark in ("{{", "}}", "{%", "%}", "{#", "#}")):
        raise PreinlineError("a Jinja delimiter was left over ('}}' or '%}' in a string literal?)")
    if _DYNAMIC_STYLING_ATTR.search(tokenised):
        raise PreinlineError("a class, id or style attribute holds template code; it decides the CSS")
    return tokenised


def _restore(inlined: str, originals: list[str]) -> str:
    found = [int(statement or expression) for statement, expression in _TOKEN.findall(inlined)]
    if found != list(range(len(originals))):
        raise PreinlineError("the HTML parser moved or dropped template code (unbalanced tags?)")
    return _TOKEN.sub(lambda match: originals[int(match.group(1) or match.group(2))], inlined)


# One element of each kind that Python builds (flows.cards), in the context the template
# gives it: inlining this once tells their styles.
_PROBE = ('<html><body><p class="chips"><span class="chip">x</span> <span class="chip-related">x</span> '
          '<span class="chip-more">x</span></p><p class="text"><span class="hl">x</span></p>'
          '<p class="links"><a class="link" href="https://example.org/">x</a></p></body></html>')
_PROBED = {"link": "link", "chip": "chip", "chip_related": "chip-related", "chip_more": "chip-more", "mark": "hl"}


def probe_styles(css: str) -> Styles:
    """The inline styles ``css`` gives the markup that flows.cards builds."""
    import lxml.html  # see inline_css

    doc = lxml.html.document_fromstring(inline_css(_PROBE, css))
    return Styles(**{field: doc.find_class(name)[0].get("style") or "" for field, name in _PROBED.items()})


def preinline_template(source: str, css: str) -> str:
    """The Jinja template ``source`` with ``css`` inlined; PreinlineError where that isn't exact."""
    _check_preinlinable(source, css)
    originals: list[str] = []
    tokenised = _tokenise(source, originals)
    return _restore(inline_css(tokenised, css), originals)


def inlining_key(source: str, css: str) -> str:
    """What a stored inlining was made from: the template, the CSS and the inliner's versions
    (read from the installed packages' metadata, without importing them)."""
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha256()
    for part in (source, css):
        digest.update(part.encode("utf-8") + b"\x00")
    for package in _INLINER:
        try:
            digest.update(f"{package} {version(package)}\x00".encode())
        except PackageNotFoundError:
            digest.update(f"{package} -\x00".encode())
    return digest.hexdigest()


def stored_inlining(templates_dir: Path, source: str, css: str) -> tuple[str, Styles] | None:
    """The pre-inlined template and the probed styles stored in ``templates_dir`` (see
    `write_inlined`), or None where there are none or they were made from other sources."""
    path = Path(templates_dir) / INLINED_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored["key"] != inlining_key(source, css):
            log.info("%s is out of date (template, CSS or inliner changed): inlining again", path)
            return None
        return stored["template"], Styles(**stored["styles"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return None


def write_inlined(templates_dir: Path) -> Path:
    """Inline the CSS into the HTML template (premailer) and store the result, with the
    probed styles, where every Renderer of ``templates_dir`` reads it: ``python -m flows.render``."""
    templates_dir = Path(templates_dir)
    source = (templates_dir / HTML_TEMPLATE).read_text(encoding="utf-8")
    css = digest_css(templates_dir)
    stored = {
        "about": f"Generated by `python -m flows.render` from {HTML_TEMPLATE} and {CSS_FILE}: "
                 "do not edit; regenerate after changing either (a stale file is ignored).",
        "key": inlining_key(source, css),
        "styles": probe_styles(css)._asdict(),
        "template": preinline_template(source, css),
    }
    path = templates_dir / INLINED_FILE
    path.write_text(json.dumps(stored, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- the message


class _UrlListHeader(UnstructuredHeader):
    """A header of <URL> entries, folded only between entries and never RFC 2047-encoded.

    The stock folder encodes any word longer than a line (every unsubscribe URL), which hides
    the URL from mail clients; the header object folds itself, whatever policy flattens it.
    """

    def fold(self, *, policy: email_policy.Policy) -> str:  # type: ignore[override]
        return url_list_line(self.name, re.split(r"(?<=>)\s*,\s*", str(self)), policy.linesep)


def url_list_line(name: str, entries: list[str], linesep: str = "\r\n") -> str:
    return f"{name}: " + f",{linesep} ".join(entries) + linesep


_HEADERS = HeaderRegistry()
_HEADERS.map_to_type("list-unsubscribe", _UrlListHeader)
MAIL_POLICY = email_policy.SMTP.clone(header_factory=_HEADERS)

# Characters that end a header line for some parser (str.splitlines() counts all of these).
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def recipient(subscriber: Subscriber) -> Address:
    """The To address; control characters in the name become spaces, so no header can be forged."""
    name = one_line(_LINE_BREAKING.sub(" ", subscriber.display_name))
    try:
        return Address(display_name=name, addr_spec=subscriber.email)
    except (ValueError, HeaderParseError) as exc:
        raise RenderError(f"cannot address a message to {subscriber.email!r}: {exc}") from None


def _environment(templates_dir: Path, in_memory: dict[str, str]) -> Environment:
    env = Environment(
        loader=ChoiceLoader([DictLoader(in_memory), FileSystemLoader(templates_dir)]),
        autoescape=select_autoescape(enabled_extensions=("html.j2", "html"), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["safe_url"] = safe_url
    env.filters["wrap"] = wrap
    return env


class Renderer:
    """Turns digests into email messages; loads the templates and inlines their CSS once."""

    def __init__(self, templates_dir: Path, *, settings: Settings) -> None:
        self.settings = settings
        self._in_memory: dict[str, str] = {}
        self.env = _environment(Path(templates_dir), self._in_memory)
        self.css = (Path(templates_dir) / CSS_FILE).read_text(encoding="utf-8")
        self._css_is_ascii = self.css.isascii()
        self._bare = self.env.get_template(HTML_TEMPLATE)
        self._text = self.env.get_template(TEXT_TEMPLATE)
        # Markup built in Python (link rows, chips, highlights) gets its styles from the same
        # CSS (`styles`); inlined per email, premailer styles it with the rest.
        self._html, self.inline_mode, self.styles = self._load_inlined(Path(templates_dir))
        # The cards block, cut once per paper (flows/fragments.py); where CSS is inlined per
        # email, or the template has no such block, Jinja renders every card.
        self._cards = (CardsBlock(self._html, CARDS_BLOCK)
                       if self.inline_mode == "pre-inlined" and CARDS_BLOCK in self._html.blocks else None)

    def _load_inlined(self, templates_dir: Path) -> tuple[Template, InlineMode, Styles]:
        source, _, _ = self.env.loader.get_source(self.env, HTML_TEMPLATE)  # type: ignore[union-attr]
        stored = stored_inlining(templates_dir, source, self.css)
        if stored is not None:
            self._in_memory[INLINED_TEMPLATE], styles = stored
            return self.env.get_template(INLINED_TEMPLATE), "pre-inlined", styles
        try:
            self._in_memory[INLINED_TEMPLATE] = preinline_template(source, self.css)
        except PreinlineError as exc:
            log.warning("CSS will be inlined per email (about 4 ms each): %s", exc)
            return self._bare, "per-email", NO_STYLES
        return self.env.get_template(INLINED_TEMPLATE), "pre-inlined", probe_styles(self.css)

    def _html_from(self, context: dict[str, Any], digest: Digest) -> str:
        if self._cards is not None and self._cards.usable:
            html = self._cards.render(context, [ranked.paper for ranked in digest.papers])
        else:
            html = self._html.render(context)
        return html if self.inline_mode == "pre-inlined" else inline_css(html, self.css)

    def _mail(self, digest: Digest, subscriber: Subscriber, links: DigestLinks) -> tuple[dict[str, Any], bytes]:
        """The context and the HTML part (UTF-8 bytes, ASCII but where the CSS is not) of one
        mail: the first ``settings.mail_papers`` papers, fewer where the HTML would outgrow
        HTML_BUDGET (the digest's web view lists them all; without one, every paper that fits)."""
        _check_links(links)
        # Without a web view to send the rest to, the mail lists every paper that fits.
        cap = self.settings.mail_papers if links.web_view else len(digest.papers)
        shown = min(len(digest.papers), cap)
        while True:
            context = digest_context(digest, subscriber, links, shown=shown, styles=self.styles)
            html, size = self._ascii(self._html_from(context, digest))
            if size <= HTML_BUDGET or shown == 0:
                return context, html
            # Rare (a 30-paper digest is about 60 KB): shrink in proportion, then step down.
            shown = max(0, min(shown - 1, shown * HTML_BUDGET // size))

    def _ascii(self, html: str) -> tuple[bytes, int]:
        """`ascii_html` as the bytes of the part, and its length in characters, knowing that
        the only <style> holds this renderer's CSS: every other character comes through
        autoescaping, which never lets text open a <style>. Encoded once, straight to bytes
        (a str first, then bytes, cost two passes over 60 KB)."""
        if self._css_is_ascii or html.isascii():
            data = html.encode("ascii", "xmlcharrefreplace")
            return data, len(data)
        html = ascii_html(html)
        return html.encode("utf-8"), len(html)

    def render_html(self, digest: Digest, subscriber: Subscriber, links: DigestLinks) -> str:
        """The HTML part, CSS inlined, non-ASCII characters as character references."""
        return self._mail(digest, subscriber, links)[1].decode("utf-8")

    def render_web(self, digest: Digest, subscriber: Subscriber, links: DigestLinks) -> str:
        """The digest's web view: every paper, in the mail's layout."""
        _check_links(links)
        return self._html_from(digest_context(digest, subscriber, links, web=True, styles=self.styles), digest)

    def render_html_bare(self, digest: Digest, subscriber: Subscriber, links: DigestLinks) -> str:
        """The raw HTML template rendered without any CSS: the floor for benchmarks."""
        shown = min(len(digest.papers), self.settings.mail_papers)
        return self._bare.render(digest_context(digest, subscriber, links, shown=shown))

    def render_text(self, digest: Digest, subscriber: Subscriber, links: DigestLinks) -> str:
        """The plain-text part (the same papers as the HTML part)."""
        return self._text.render(self._mail(digest, subscriber, links)[0])

    def render_message(
        self,
        digest: Digest,
        subscriber: Subscriber,
        links: DigestLinks,
        *,
        now: datetime | None = None,
    ) -> EmailMessage:
        """The complete multipart/alternative message (plain text first, then HTML)."""
        context, html = self._message_context(digest, subscriber, links)
        message = EmailMessage(policy=MAIL_POLICY)
        try:
            message["From"] = self.settings.mail_from
        except (ValueError, HeaderParseError) as exc:
            raise RenderError(f"PAPERBOY_MAIL_FROM is not a usable address: {exc}") from None
        # Folded here, between words only: the email package's folder drops the quotes
        # around a long display name (see address_line); set_raw keeps this folding.
        message.set_raw("To", _to_line(subscriber).removeprefix("To: ").removesuffix("\r\n"))
        message["Subject"] = context["subject"]
        message["Date"] = _date(now)
        message["Message-ID"] = digest.message_id
        message["List-Id"] = self._list_id
        message["List-Unsubscribe"] = f"<{links.unsubscribe}>, <{links.unsubscribe_mailto}>"
        for name, value in FIXED_HEADERS:
            message[name] = value
        boundary, parts = self._body(context, html)
        message["Content-Type"] = f'multipart/alternative; boundary="{boundary}"'
        for content_type, encoding, payload in parts:
            part = MIMEPart(policy=MAIL_POLICY)
            part["Content-Type"] = content_type
            part["Content-Transfer-Encoding"] = encoding
            part.set_payload(payload.decode("ascii"))
            message.attach(part)
        return message

    def render_bytes(
        self,
        digest: Digest,
        subscriber: Subscriber,
        links: DigestLinks,
        *,
        now: datetime | None = None,
    ) -> bytes:
        """`render_message` as the bytes SMTP sends (CRLF line ends, 7-bit), written directly.

        The email package's header objects cost more than rendering the digest, twice
        (building, then flattening): here only a line that needs encoding or folding goes
        through them, and From, List-Id and Subject once per distinct value. An address that
        is not ASCII is written as UTF-8 in the To line (RFC 6532): such a message needs a
        server that offers SMTPUTF8 (flows/deliver.py checks); everything else stays 7-bit.
        """
        context, html = self._message_context(digest, subscriber, links)
        boundary, parts = self._body(context, html)
        lines = [
            self._from_line(),
            _to_line(subscriber),
            _subject_line(context["subject"]),
            _simple_line("Date", _date(now)),
            _simple_line("Message-ID", digest.message_id),
            _fixed_line("List-Id", self._list_id),
            url_list_line("List-Unsubscribe", [f"<{links.unsubscribe}>", f"<{links.unsubscribe_mailto}>"]),
            *(_simple_line(name, value) for name, value in FIXED_HEADERS),
            f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n',
        ]
        out = ["".join(lines).encode("ascii" if subscriber.email.isascii() else "utf-8"), b"\r\n"]
        for content_type, encoding, payload in parts:
            head = (f"--{boundary}\r\nContent-Type: {content_type}\r\n"
                    f"Content-Transfer-Encoding: {encoding}\r\n\r\n")
            out += [head.encode("ascii"), payload, b"\r\n"]
        out.append(f"--{boundary}--\r\n".encode("ascii"))
        return b"".join(out)

    @property
    def _list_id(self) -> str:
        return f"Paperboy digest <{self.settings.list_id}>"

    def _from_line(self) -> str:
        try:
            return _fixed_line("From", self.settings.mail_from)
        except (ValueError, HeaderParseError) as exc:
            raise RenderError(f"PAPERBOY_MAIL_FROM is not a usable address: {exc}") from None

    def _message_context(self, digest: Digest, subscriber: Subscriber,
                         links: DigestLinks) -> tuple[dict[str, Any], bytes]:
        if digest.subscriber.lower() != subscriber.email.lower():
            raise RenderError(
                f"digest for {digest.subscriber!r} cannot be mailed to {subscriber.email!r}"
            )
        return self._mail(digest, subscriber, links)

    def _body(self, context: dict[str, Any], html: bytes) -> tuple[str, list[tuple[str, str, bytes]]]:
        """A fresh boundary and the two parts: (Content-Type, transfer encoding, payload)."""
        text = self._text.render(context)
        parts = [('text/plain; charset="utf-8"', *encode_body(text)),
                 ('text/html; charset="utf-8"', *encode_part(html))]
        # Set here, not left to the email package: it would search both bodies with a
        # regex compiled per message. "=_" cannot occur in quoted-printable text.
        boundary = f"=_paperboy_{secrets.token_hex(12)}"
        while any(boundary.encode("ascii") in payload for _, _, payload in parts):
            boundary = f"=_paperboy_{secrets.token_hex(12)}"
        return boundary, parts


# Headers every digest carries unchanged, after List-Unsubscribe.
FIXED_HEADERS = (
    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ("Auto-Submitted", "auto-generated"),
    ("Precedence", "bulk"),
    ("MIME-Version", "1.0"),
)
MAX_LINE = 998  # RFC 5321/5322: characters per line, CRLF not counted


def _date(now: datetime | None) -> str:
    return format_datetime((now or datetime.now(timezone.utc)).astimezone(timezone.utc))


def _folded(name: str, value: object) -> str:
    """One header line exactly as the email package writes it (parsed, RFC 2047, folded)."""
    name, header = MAIL_POLICY.header_store_parse(name, value)
    return MAIL_POLICY.fold(name, header)


_PLAIN_NAME = re.compile(r"[A-Za-z0-9'-]+(?: [A-Za-z0-9'-]+)*\Z")
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+\Z")
# RFC 5322 atext: a name of such words separated by single spaces needs no quoting, and
# may be folded at its spaces.
_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_ADDRESS_BREAKING = re.compile(r"[\s<>\\\"(),:;\[\]\x00-\x1f\x7f]")
LINE = 78  # RFC 5322's recommended limit for a header line, CRLF not counted


def _to_line(subscriber: Subscriber) -> str:
    """The To line, written directly when it fits on one line: "Ada Lovelace <ada@…>", or a
    name with non-ASCII letters as one RFC 2047 word, "=?utf-8?b?Wm/DqyBNw7xsbGVy?= <zoe@…>"
    (the email package's own encoder cost a quarter of a message). Else `address_line`."""
    name = one_line(_LINE_BREAKING.sub(" ", subscriber.display_name))
    if _PLAIN_ADDRESS.match(subscriber.email):
        if _PLAIN_NAME.match(name):
            line = f"To: {name} <{subscriber.email}>\r\n"
        elif not name.isascii() and name.isprintable():
            word = f"=?utf-8?b?{base64.b64encode(name.encode('utf-8')).decode('ascii')}?="
            line = f"To: {word} <{subscriber.email}>\r\n" if len(word) <= 75 else ""
        else:
            line = ""
        if line and len(line) <= LINE + 2:
            return line
    return address_line("To", name, subscriber.email)


def address_line(field: str, name: str, address: str) -> str:
    """One address header line, with the email package's address handling (its quoting of
    display names, email.headerregistry; its RFC 2047 encoder, email.header), folded only at
    the name's spaces. The email package's own folder drops the quotes of a long quoted name,
    and a comma in it then splits the header into several bogus addresses (issue 16).

    * plain words stay as they are; an ASCII name with specials is one quoted string,
      folded at its spaces (inside the quotes, which unfolding restores);
    * a name with non-ASCII letters: its plain ASCII words as they are, the rest as RFC 2047
      encoded words of whole words, a new encoded word only at a space of the name (the
      stdlib's parser keeps that space, where decoders that drop the white space between
      two encoded words lose it: only names with over ~20 accented letters in a row);
    * an address that is not ASCII is written as UTF-8 (RFC 6532): it travels only where
      the server offers SMTPUTF8 (flows/deliver.py)."""
    angle = f"<{_checked_address(address)}>"
    head = f"{field}:"
    if not name:
        return f"{head} {angle}\r\n"
    if name.isascii() and name.isprintable():
        if _ATOM_PHRASE.match(name) and "=?" not in name:
            return _fold_words(head, [*name.split(" "), angle])
        quoted = str(Address(display_name=name, addr_spec="x@example.org")).removesuffix(" <x@example.org>")
        if not quoted.startswith('"'):
            quoted = f'"{quoted}"'  # "=?" alone needs no quoting for Address, but for us (below)
        quoted = quoted.replace("=?", "=\\?")  # never read as an encoded word inside the quotes
        return _fold_words(head, [*quoted.split(" "), angle])
    words = [piece for word in _encoded_phrase(name, field) for piece in word.split("\r\n ")]
    return _fold_words(head, [*words, angle])


def _encoded_phrase(name: str, field: str) -> list[str]:
    """The name's words: plain ASCII ones as they are, runs of the others as encoded words
    of at most 75 characters (a single longer word stays whole, up to the line limit)."""
    out: list[str] = []
    run: list[str] = []

    def close() -> None:
        if run:
            out.extend(_encoded_words(run, field))
            run.clear()

    for word in name.split(" "):
        if word and _ATOM_PHRASE.match(word) and "=?" not in word:
            close()
            out.append(word)
        else:
            run.append(word)
    close()
    return out


def _encoded_words(words: list[str], field: str) -> list[str]:
    encoded: list[str] = []
    current: list[str] = []
    for word in words:
        if current and len(_encode(" ".join([*current, word]), field)) > 75:
            encoded.append(_encode(" ".join(current), field))
            current = []
        current.append(word)
    encoded.append(_encode(" ".join(current), field))
    return encoded


def _encode(text: str, field: str) -> str:
    """``text`` as one RFC 2047 encoded word (the email package's encoder, never folded); a
    word too long for one line (150 four-byte characters without a space) as several."""
    return Header(text, "utf-8", maxlinelen=MAX_LINE - 80, header_name=field).encode(linesep="\r\n")


def _fold_words(head: str, words: list[str]) -> str:
    """``head`` and the words separated by spaces, a line break before a word that would
    take a line past 78 characters (a word longer than that gets a line of its own)."""
    lines, line = [], head
    for word in words:
        if len(line) + 1 + len(word) > LINE and line != head:
            lines.append(line)
            line = ""
        line += f" {word}"
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _checked_address(address: str) -> str:
    """``address`` if it can stand between angle brackets in a header, else RenderError."""
    if address.isascii():
        try:
            Address(addr_spec=address)
        except (ValueError, HeaderParseError) as exc:
            raise RenderError(f"cannot address a message to {address!r}: {exc}") from None
    elif address.count("@") != 1 or _ADDRESS_BREAKING.search(address) or not address.isprintable():
        raise RenderError(f"cannot address a message to {address!r}: not a mailbox address")
    return address


@functools.lru_cache(maxsize=256)
def _fixed_line(name: str, value: str) -> str:
    """`_folded` for values that recur: From, List-Id, a day's subjects."""
    return _folded(name, value)


_SUBJECT_CHUNK = 42  # UTF-8 bytes per encoded word: "=?utf-8?b?" + 56 + "?=", 77 with "Subject: "


def _subject_line(subject: str) -> str:
    """The Subject line, written directly: each subscriber's names their own keywords, so the
    email package's encoder (a tenth of a message) would run for every one. ASCII that fits
    goes as it is; anything else as RFC 2047 base64 words, one per folded line, each ending
    on a whole character. Control characters or odd spacing: the email package."""
    if not subject.isprintable() or subject != one_line(subject):
        return _folded("Subject", subject)
    line = f"Subject: {subject}\r\n"
    if subject.isascii() and len(line) <= 80:
        return line
    raw = subject.encode("utf-8")
    words, start = [], 0
    while start < len(raw):
        end = min(start + _SUBJECT_CHUNK, len(raw))
        while end < len(raw) and (raw[end] & 0xC0) == 0x80:  # never split a character
            end -= 1
        words.append(f"=?utf-8?b?{base64.b64encode(raw[start:end]).decode('ascii')}?=")
        start = end
    return "Subject: " + "\r\n ".join(words) + "\r\n"


def _simple_line(name: str, value: str) -> str:
    line = f"{name}: {value}\r\n"
    if value.isascii() and value.isprintable() and len(line) <= 80:
        return line  # what folding would give: nothing to encode, nothing to fold
    return _folded(name, value)


def ascii_html(html: str) -> str:
    """``html`` with every non-ASCII character written as a character reference, which HTML
    reads back as that character; unchanged where a <style> or <script> holds non-ASCII
    (character references mean nothing there)."""
    if html.isascii() or not _raw_text_is_ascii(html):
        return html
    return html.encode("ascii", "xmlcharrefreplace").decode("ascii")


# Spelled out rather than IGNORECASE, which keeps the engine from jumping between "<"s.
_RAW_TEXT_OPEN = re.compile(r"<([sS][tT][yY][lL][eE]|[sS][cC][rR][iI][pP][tT])\b")


def _raw_text_is_ascii(html: str) -> bool:
    """Whether every <style> and <script> element holds ASCII only. Opening tags by regex,
    then str.find for the end: one regex over the whole element cost 0.1 ms a digest, and
    lower-casing a non-ASCII digest to search it 0.3 ms."""
    for opening in _RAW_TEXT_OPEN.finditer(html):
        tag = opening.group(1)
        closing = re.compile(rf"</{tag}", re.IGNORECASE).search(html, opening.end())
        if not html[opening.start():closing.start() if closing else len(html)].isascii():
            return False
    return True


def encode_body(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, payload with CRLF line ends) for one UTF-8 text part.

    ASCII with lines of at most 998 characters goes as it is ("7bit": nothing to decode);
    anything else as quoted-printable, encoded in C by binascii (the email package's own
    quoted-printable encoder is pure Python and was a third of the cost of a message).
    """
    return encode_part(text.encode("utf-8"))


# What 7bit may carry (RFC 5322: no NUL, no controls but tab; line feeds end lines): the
# bytes left after deleting these are the ones that need quoted-printable.
_SEVEN_BIT = bytes([9, 10, *range(32, 127)])


def encode_part(data: bytes) -> tuple[str, bytes]:
    """`encode_body` of text already encoded as UTF-8. The checks run on bytes, in C: a
    regex for control characters over a 60 KB HTML part cost 0.15 ms a message."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if data.isascii() and _lines_fit(data) and not data.translate(None, _SEVEN_BIT):
        return "7bit", data.replace(b"\n", b"\r\n")
    encoded = binascii.b2a_qp(data, istext=True)
    return "quoted-printable", encoded.replace(b"\n", b"\r\n")


# A line longer than MAX_LINE holds a whole one of these blocks of the data, however it lies.
_BLOCK = (MAX_LINE - 1) // 2


def _lines_fit(data: bytes) -> bool:
    """Whether no line of ``data`` is longer than MAX_LINE bytes. Only a block without a line
    break can be part of a long line, so only those lines are measured: str.find per block
    of ~500 bytes, not a split into some 800 lines (0.1 ms a message)."""
    find = data.find
    for start in range(0, len(data), _BLOCK):
        if find(b"\n", start, start + _BLOCK) < 0:
            end = find(b"\n", start + _BLOCK)
            if (len(data) if end < 0 else end) - (data.rfind(b"\n", 0, start) + 1) > MAX_LINE:
                return False
    return True


if __name__ == "__main__":
    from flows.settings import PROJECT_ROOT

    print(f"wrote {write_inlined(PROJECT_ROOT / 'templates')}")
