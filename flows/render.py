"""Digest → email: Jinja2 templates (HTML + plain text), CSS inlined, one EmailMessage.

Inlining CSS with premailer costs about 4 ms per email, some 20x the Jinja render, so the
Renderer inlines the HTML template's *source* once, at load time: every Jinja construct is
swapped for an opaque token that lxml and premailer leave alone, premailer runs once, the
tokens are swapped back, and that result is the template actually rendered. This is exact
as long as the CSS only matches markup written literally in the template (see digest.css).
Where it cannot be exact (structural selectors, a variable in a class/id/style attribute,
includes or macros, markup the HTML parser rearranges) the Renderer says why in the log and
inlines every email instead: slower, never wrong.

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
import logging
import re
import secrets
from collections.abc import Iterable
from datetime import date, datetime, timezone
from email import policy as email_policy
from email.errors import HeaderParseError
from email.header import Header
from email.headerregistry import Address, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from jinja2 import (
    ChoiceLoader,
    DictLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    select_autoescape,
)
from markupsafe import Markup, escape

from flows.links import DigestLinks
from flows.models import Digest, Match, Paper, RankedPaper
from flows.settings import Settings
from flows.subscribers import Subscriber

log = logging.getLogger(__name__)

HTML_TEMPLATE = "digest.html.j2"
TEXT_TEMPLATE = "digest.txt.j2"
CSS_FILE = "digest.css"
INLINED_TEMPLATE = "digest.inlined.html.j2"  # the pre-inlined HTML, served from memory

AUTHORS_SHOWN = 5
SNIPPET_CHARS = 300
MARK_STYLE = "background-color:#fff1a8;color:inherit;padding:0 1px;border-radius:2px"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

InlineMode = Literal["pre-inlined", "per-email"]


class RenderError(Exception):
    """A digest cannot be turned into a valid, safe email (bad address or link)."""


class PreinlineError(Exception):
    """The HTML template cannot be CSS-inlined once at load time without changing its output."""


# ---------------------------------------------------------------- text helpers


def format_day(day: date) -> str:
    """'21 Nov 2026', the same in every locale."""
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def abstract_snippet(abstract: str, limit: int = SNIPPET_CHARS) -> str:
    """The abstract's opening, cut at a word boundary near ``limit`` characters."""
    text = _one_line(abstract)
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit + 1)
    if cut < limit // 2:
        cut = limit
    return text[:cut].rstrip(" ,;:.-") + "…"


def wrap(text: object, width: int = 72, indent: str = "", first: str | None = None) -> str:
    """Plain text wrapped greedily at ``width``; long words such as URLs are never broken."""
    # Hand-rolled, a line at a time: textwrap.fill, then a loop over words, were the
    # largest single cost of the plain-text part (~80 calls per message).
    rest = " ".join(str(text).split())
    if not rest:
        return ""
    lines: list[str] = []
    prefix = indent if first is None else first
    while len(prefix) + len(rest) > width:
        cut = rest.rfind(" ", 0, max(0, width - len(prefix) + 1))
        if cut <= 0:  # the first word alone is too long: it gets a line of its own
            cut = rest.find(" ")
            if cut < 0:
                break
        lines.append(prefix + rest[:cut])
        rest, prefix = rest[cut + 1:], indent
    lines.append(prefix + rest)
    return "\n".join(lines)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# ---------------------------------------------------------------- safe HTML pieces

# Never valid unencoded in a URL, and each could end an attribute or a header's <...>.
_URL_FORBIDDEN = re.compile(r"[\s<>\"`\\\x00-\x1f\x7f]")
_URL_SAFE_CHARS = ":/?#[]@!$&'()*+,;=%~"
_MAILTO = re.compile(r"mailto:[^\s<>,\"\\\x00-\x1f\x7f]+\Z")


def safe_url(url: object) -> str:
    """``url`` if it is an absolute http(s) URL, else "" (templates then leave the link out)."""
    return _safe_url(url) if isinstance(url, str) else ""


@functools.lru_cache(maxsize=8192)  # the same papers' links recur in thousands of digests
def _safe_url(url: str) -> str:
    if not url or _URL_FORBIDDEN.search(url):
        return ""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return ""
    # Percent-encode non-ASCII here, as lxml would, so every client sees one exact href.
    return url if url.isascii() else quote(url, safe=_URL_SAFE_CHARS)


@functools.lru_cache(maxsize=1024)
def _terms_pattern(terms: tuple[str, ...]) -> re.Pattern[str] | None:
    unique = {_one_line(term).lower(): _one_line(term) for term in terms if term and term.strip()}
    if not unique:
        return None
    # Longest first so "model-based RL" wins over "RL"; spaces match any whitespace run.
    alternatives = sorted(unique.values(), key=len, reverse=True)
    body = "|".join(re.escape(term).replace(r"\ ", r"\s+") for term in alternatives)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE)


def highlight(text: str, terms: Iterable[str], *, style: str = MARK_STYLE) -> Markup:
    """``text`` HTML-escaped, with whole-word, case-insensitive matches of ``terms`` in <mark>."""
    terms = tuple(terms)
    spans = _plain_spans(text, terms)
    if spans is None:
        pattern = _terms_pattern(terms)
        if pattern is None:
            return escape(text)
        spans = [found.span() for found in pattern.finditer(text)]
    return _marked(text, spans, style)


# re.IGNORECASE matches these to ASCII "i" and "s"; str.lower() does not.
_FOLD_TO_ASCII = frozenset("\u0131\u017f")


def _plain_spans(text: str, terms: tuple[str, ...]) -> list[tuple[int, int]] | None:
    """The spans `_terms_pattern` would find, found with str.find instead: compiling a regex
    per paper (each matched its own terms) cost more than the rest of a digest's context.
    None where that cannot be exact: a non-ASCII term, text that is not on one line with
    single spaces, or text whose lowercase differs in length or folds like the regex does not.
    """
    wanted = {_one_line(term).lower() for term in terms if term and term.strip()}
    if not wanted:
        return []
    lowered = text.lower()
    if (not all(term.isascii() for term in wanted) or len(lowered) != len(text)
            or _one_line(text) != text or not _FOLD_TO_ASCII.isdisjoint(text)):
        return None
    found = []  # (start, -length, end): at each position the longest term wins, as in the regex
    for term in wanted:
        at = lowered.find(term)
        while at >= 0:
            end = at + len(term)
            if not (at and _is_word(text[at - 1])) and not (end < len(text) and _is_word(text[end])):
                found.append((at, -len(term), end))
            at = lowered.find(term, at + 1)
    spans: list[tuple[int, int]] = []
    position = 0
    for at, _, end in sorted(found):
        if at >= position:
            spans.append((at, end))
            position = end
    return spans


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"  # what the regex's \w matches


def _marked(text: str, spans: Iterable[tuple[int, int]], style: str) -> Markup:
    opening = f'<mark style="{escape(style)}">'
    pieces: list[str] = []
    position = 0
    for start, end in spans:
        pieces += (escape(text[position:start]), opening, escape(text[start:end]), "</mark>")
        position = end
    pieces.append(escape(text[position:]))
    return Markup("".join(pieces))


# ---------------------------------------------------------------- template context


class Fields(dict):
    """A dict whose keys are also its attributes. Jinja reads ``p.title`` with getattr first
    and by key only when that fails; on a plain dict the failure (an exception) costs more
    than the read, a thousand times per message. Built once, never changed (the attributes
    are a copy); keys are never the names of dict methods."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.__dict__.update(self)


def subject_for(count: int, day: date) -> str:
    when = format_day(day)
    if not count:
        return f"Paperboy · no new papers today · {when}"
    return f"Paperboy · {_plural(count, 'new paper')} · {when}"


def _highlight_terms(matches: Iterable[Match]) -> list[str]:
    return [term for match in matches for term in (match.terms or (match.keyword,))]


def _dates_line(paper: Paper) -> str:
    if paper.published is None or paper.published == paper.listed:
        return f"Listed {format_day(paper.listed)}"
    return f"Published {format_day(paper.published)} · listed {format_day(paper.listed)}"


def _votes_line(upvotes: int, comments: int) -> str:
    parts = [_plural(upvotes, "upvote")] if upvotes else []
    if comments:
        parts.append(_plural(comments, "comment"))
    return " · ".join(parts)


def _paper_context(rank: int, ranked: RankedPaper) -> dict[str, Any]:
    paper = ranked.paper
    terms = _highlight_terms(ranked.matches)
    title = _one_line(paper.title)
    # The ranking stage may attach a snippet centred on the best match.
    snippet = _one_line(getattr(ranked, "snippet", None) or "") or abstract_snippet(paper.abstract)
    authors = [_one_line(name) for name in paper.authors[:AUTHORS_SHOWN]]
    more = max(0, len(paper.authors) - AUTHORS_SHOWN)
    return Fields({
        "rank": rank,
        "title": title,
        "title_html": highlight(title, terms),
        "url": paper.url,
        "authors": authors,
        "more_authors": more,
        "authors_line": ", ".join(authors) + (f" +{more} more" if more else ""),
        "dates": _dates_line(paper),
        "votes": _votes_line(paper.upvotes, paper.comments),
        "github_repo": paper.github_repo or "",
        "project_page": paper.project_page or "",
        "snippet": snippet,
        "snippet_html": highlight(snippet, terms),
        "matches": [Fields(keyword=m.keyword, fields=list(m.fields)) for m in ranked.matches],
        "matched": ", ".join(f"{m.keyword} ({', '.join(m.fields)})" for m in ranked.matches),
    })


def _trending_context(paper: Paper) -> dict[str, Any]:
    return Fields(title=_one_line(paper.title), url=paper.url, votes=_plural(paper.upvotes, "upvote"))


def _reason(subscriber: Subscriber) -> str:
    who = (
        f"You get this {subscriber.frequency} digest because {subscriber.email} "
        "subscribed to Paperboy"
    )
    if not subscriber.keywords:
        return f"{who} for trending papers."
    shown = ", ".join(subscriber.keywords[:10])
    if len(subscriber.keywords) > 10:
        shown += f" and {len(subscriber.keywords) - 10} more"
    return f"{who} with the keywords: {shown}."


def _check_links(links: DigestLinks) -> None:
    if not safe_url(links.unsubscribe) or not safe_url(links.preferences):
        raise RenderError("the unsubscribe and preferences links must be plain http(s) URLs")
    if not _MAILTO.match(links.unsubscribe_mailto) or not links.unsubscribe_mailto.isascii():
        raise RenderError("the unsubscribe mailto link is not a plain mailto: URL")


def digest_context(digest: Digest, subscriber: Subscriber, links: DigestLinks) -> dict[str, Any]:
    """Everything both templates (and the web preview) need, built from one digest."""
    _check_links(links)
    count = len(digest.papers)
    day = format_day(digest.digest_date)
    headline = f"{_plural(count, 'new paper') if count else 'No new papers'} for you, {day}"
    papers = [_paper_context(rank, ranked) for rank, ranked in enumerate(digest.papers, 1)]
    return {
        "subject": subject_for(count, digest.digest_date),
        "headline": headline,
        # the preview line inbox lists show next to the subject
        "preheader": " · ".join(p["title"] for p in papers[:3]) or "Nothing new matched today.",
        "papers": papers,
        "trending": [_trending_context(paper) for paper in digest.trending],
        "links": links,
        "reason": _reason(subscriber),
        "digest_date": digest.digest_date,
    }


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


def inline_css(html: str, css: str) -> str:
    """``html`` with ``css`` applied as style attributes: one premailer pass per document."""
    import premailer  # with requests, cssutils and lxml: ~14 MB a process that never inlines skips

    return premailer.transform(html, css_text=css, **_PREMAILER_OPTIONS)


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


def preinline_template(source: str, css: str) -> str:
    """The Jinja template ``source`` with ``css`` inlined; PreinlineError where that isn't exact."""
    _check_preinlinable(source, css)
    originals: list[str] = []
    tokenised = _tokenise(source, originals)
    return _restore(inline_css(tokenised, css), originals)


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
    name = _one_line(_LINE_BREAKING.sub(" ", subscriber.display_name))
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
        self._bare = self.env.get_template(HTML_TEMPLATE)
        self._text = self.env.get_template(TEXT_TEMPLATE)
        self._html, self.inline_mode = self._load_inlined()

    def _load_inlined(self) -> tuple[Template, InlineMode]:
        source, _, _ = self.env.loader.get_source(self.env, HTML_TEMPLATE)  # type: ignore[union-attr]
        try:
            self._in_memory[INLINED_TEMPLATE] = preinline_template(source, self.css)
        except PreinlineError as exc:
            log.warning("CSS will be inlined per email (about 4 ms each): %s", exc)
            return self._bare, "per-email"
        return self.env.get_template(INLINED_TEMPLATE), "pre-inlined"

    def _html_from(self, context: dict[str, Any]) -> str:
        html = self._html.render(context)
        return html if self.inline_mode == "pre-inlined" else inline_css(html, self.css)

    def render_html(self, digest: Digest, subscriber: Subscriber, links: DigestLinks) -> str:
        """The HTML part, CSS inlined."""
        return self._html_from(digest_context(digest, subscriber, links))

    def render_html_bare(self, digest: Digest, subscriber: Subscriber, links: DigestLinks) -> str:
        """The raw HTML template rendered without any CSS: the floor for benchmarks."""
        return self._bare.render(digest_context(digest, subscriber, links))

    def render_text(self, digest: Digest, subscriber: Subscriber, links: DigestLinks) -> str:
        """The plain-text part."""
        return self._text.render(digest_context(digest, subscriber, links))

    def render_message(
        self,
        digest: Digest,
        subscriber: Subscriber,
        links: DigestLinks,
        *,
        now: datetime | None = None,
    ) -> EmailMessage:
        """The complete multipart/alternative message (plain text first, then HTML)."""
        context = self._message_context(digest, subscriber, links)
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
        boundary, parts = self._body(context)
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
        context = self._message_context(digest, subscriber, links)
        boundary, parts = self._body(context)
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

    def _message_context(self, digest: Digest, subscriber: Subscriber, links: DigestLinks) -> dict[str, Any]:
        if digest.subscriber.lower() != subscriber.email.lower():
            raise RenderError(
                f"digest for {digest.subscriber!r} cannot be mailed to {subscriber.email!r}"
            )
        return digest_context(digest, subscriber, links)

    def _body(self, context: dict[str, Any]) -> tuple[str, list[tuple[str, str, bytes]]]:
        """A fresh boundary and the two parts: (Content-Type, transfer encoding, payload)."""
        text, html = self._text.render(context), self._html_from(context)
        parts = [('text/plain; charset="utf-8"', *encode_body(text)),
                 ('text/html; charset="utf-8"', *encode_body(ascii_html(html)))]
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
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # ASCII controls but tab and line feed
_RAW_TEXT = re.compile(r"<(style|script)\b[^>]*>(.*?)</\1", re.IGNORECASE | re.DOTALL)


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
    name = _one_line(_LINE_BREAKING.sub(" ", subscriber.display_name))
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


def _subject_line(subject: str) -> str:
    return _fixed_line("Subject", subject)  # a day's subjects differ only in the paper count


def _simple_line(name: str, value: str) -> str:
    line = f"{name}: {value}\r\n"
    if value.isascii() and value.isprintable() and len(line) <= 80:
        return line  # what folding would give: nothing to encode, nothing to fold
    return _folded(name, value)


def ascii_html(html: str) -> str:
    """``html`` with every non-ASCII character written as a character reference, which HTML
    reads back as that character; unchanged where a <style> or <script> holds non-ASCII
    (character references mean nothing there)."""
    if html.isascii() or any(not found.group(2).isascii() for found in _RAW_TEXT.finditer(html)):
        return html
    return html.encode("ascii", "xmlcharrefreplace").decode("ascii")


def encode_body(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, payload with CRLF line ends) for one UTF-8 text part.

    ASCII with lines of at most 998 characters goes as it is ("7bit": nothing to decode);
    anything else as quoted-printable, encoded in C by binascii (the email package's own
    quoted-printable encoder is pure Python and was a third of the cost of a message).
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    # 7bit allows no NUL and RFC 5322 no other controls but tab: quoted-printable encodes them.
    if (text.isascii() and max(map(len, text.split("\n"))) <= MAX_LINE
            and not _CONTROL.search(text)):
        return "7bit", text.encode("ascii").replace(b"\n", b"\r\n")
    encoded = binascii.b2a_qp(text.encode("utf-8"), istext=True)
    return "quoted-printable", encoded.replace(b"\n", b"\r\n")
