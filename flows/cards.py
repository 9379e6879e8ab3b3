"""What a digest shows, built from a Digest: paper cards, the summary line, subject and headline.

Plain functions of the data (no templates, no I/O). The Renderer hands the result to the
HTML and plain-text templates; the web view and the preferences preview use it too.

A card is made for scanning: the title (a heading linking to the arXiv abstract page, or
the paper's own page when it has no arXiv id), chips saying which keywords matched, the
first authors and the last one, upvotes / comments / GitHub stars, two lines of text (Hugging
Face's TL;DR, labelled, or an abstract snippet around the match with at most `MAX_MARKS`
words highlighted) and one row of links (arXiv · PDF · Hugging Face · Code · Project), only
those that exist. Text from the sources is cleaned of LaTeX leftovers first.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, quote_plus, urlsplit

from markupsafe import Markup, escape

from flows.links import DigestLinks
from flows.models import Digest, Match, Paper, RankedPaper, is_arxiv_id
from flows.rank.spans import one_line, term_spans

if TYPE_CHECKING:  # annotations only: a render process runs without pydantic (flows/shipped.py)
    from flows.subscribers import Subscriber

SNIPPET_CHARS = 300  # abstract_snippet's default cut (the ranker's snippets are as long)
CARD_TEXT_CHARS = 170  # what a card shows: about two lines on a desktop, clamped on a phone
TITLE_CHARS = 240  # a longer title is cut: one card must never outgrow the mail's budget
LINK_TITLE_CHARS = 40  # of the title in a link's name ("PDF: Scaling Reward Models…")
TRENDING_CHARS = 150  # of an "Also trending" title
SUMMARY_CHARS = 260  # Hugging Face's TL;DR is one sentence; a longer one is cut
AUTHOR_CHARS = 60  # of one author's name
FIRST_AUTHORS = 2  # a card names the first authors and the last one
MAX_MARKS = 3  # highlighted words per card
MAX_CHIPS = 3  # keyword chips per card, then "+N"
CHIP_CHARS = 40  # of one keyword in a chip
CHIP_TERMS = 3  # terms named in a related-match chip
SUBJECT_KEYWORDS = 2  # keywords named in the subject
SUMMARY_KEYWORDS = 4  # keywords counted in the summary line
OLD_PAPER_DAYS = 60  # a paper published this long before it was listed says when
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
PERIODS = ("daily", "weekly", "catch-up")



class Styles(NamedTuple):
    """Inline styles of the markup built here rather than in the template (the link row,
    chips, highlights): the Renderer reads them from digest.css once (`Renderer.styles`),
    so every style still comes from the stylesheet. Empty: class attributes only (web
    pages, which have a stylesheet; per-email inlining, which styles the whole page)."""

    link: str = ""
    chip: str = ""
    chip_related: str = ""
    chip_more: str = ""
    mark: str = ""


NO_STYLES = Styles()

# ---------------------------------------------------------------- words and dates


def format_day(day: date) -> str:
    """'21 Nov 2026', the same in every locale."""
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def format_range(first: date, last: date) -> str:
    """'2–8 Dec 2025', '28 Nov – 4 Dec 2025', '30 Dec 2025 – 5 Jan 2026'."""
    if first >= last:
        return format_day(last)
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day}\u2013{format_day(last)}"
    if first.year == last.year:
        return f"{first.day} {MONTHS[first.month - 1]} \u2013 {format_day(last)}"
    return f"{format_day(first)} \u2013 {format_day(last)}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def shorten(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters, "…" where cut."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    if cut < limit // 2:
        cut = limit - 1
    return text[:cut].rstrip(" ,;:.-") + "\u2026"


def abstract_snippet(abstract: str, limit: int = SNIPPET_CHARS) -> str:
    """The abstract's opening, cut at a word boundary near ``limit`` characters."""
    text = one_line(abstract)
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit + 1)
    if cut < limit // 2:
        cut = limit
    return text[:cut].rstrip(" ,;:.-") + "\u2026"


def wrap(text: object, width: int = 72, indent: str = "", first: str | None = None) -> str:
    """Plain text wrapped greedily at ``width``; long words such as URLs are never broken."""
    # Hand-rolled, a line at a time: textwrap.fill, then a loop over words, were the
    # largest single cost of the plain-text part (~80 calls per message).
    rest = one_line(str(text))
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


def compact_count(number: int) -> str:
    """1234 → '1.2k'."""
    if number < 1000:
        return str(number)
    if number < 10_000:
        return f"{number / 1000:.1f}".rstrip("0").rstrip(".") + "k"
    return f"{number // 1000}k"


# ---------------------------------------------------------------- LaTeX leftovers

_LATEX_MARKS = ("\\", "$", "~", "{", "}", "math")
_MATH = re.compile(r"\$\$?([^$]{0,300}?)\$\$?")
_CITATION = re.compile(r"\s*~?\\(?:cite[a-zA-Z]*|ref|eqref|autoref|label)\*?(?:\[[^\]]*\])*\{[^{}]*\}")
_BARE_CITATION = re.compile(r"\s*~[a-z][a-z-]*\d{4}[a-z0-9]*\b")  # "benchmarks~fu2020d4rl"
_ESCAPED = re.compile(r"\\([%&_#$])")
_URL_COMMAND = re.compile(r"\\(?:url|href)\{([^{}]*)\}(?:\{([^{}]*)\})?")
_FONT_COMMAND = re.compile(
    r"\\(?:math(?:cal|bf|rm|bb|it|sf|tt|frak)|boldsymbol|text(?:bf|it|tt|rm|sc)?|emph|operatorname)"
    r"\s*\{([^{}]*)\}")
_OLD_FONT = re.compile(r"\{\\(?:it|bf|em|rm|tt|sc|sf)\s+([^{}]*)\}")
_BARE_FONT = re.compile(r"\\?\b(?:math(?:cal|bf|rm|bb|it|sf|frak)|boldsymbol)\b\s*")  # "1-mathcal O(1/K)"
_COMMAND = re.compile(r"\\([A-Za-z]+)")
_SCRIPT = re.compile(r"([\^_])(?:\{([^{}]{1,12})\}|([A-Za-z0-9*+\-]))")
_NBSP_TILDE = re.compile(r"(?<=\S)~(?=\S)")
_SPACES = re.compile(r"\s{2,}")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:)])")
SYMBOLS = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "kappa": "κ", "lambda": "λ", "mu": "μ", "nu": "ν",
    "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "phi": "φ", "varphi": "φ",
    "chi": "χ", "psi": "ψ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ",
    "Lambda": "Λ", "Pi": "Π", "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
    "times": "×", "cdot": "·", "leq": "≤", "le": "≤", "geq": "≥", "ge": "≥", "neq": "≠",
    "approx": "≈", "sim": "~", "infty": "∞", "rightarrow": "→", "to": "→", "leftarrow": "←",
    "pm": "±", "ell": "ℓ", "ldots": "…", "dots": "…", "cdots": "…", "partial": "∂",
    "nabla": "∇", "sum": "Σ", "in": "∈", "log": "log", "exp": "exp", "max": "max", "min": "min",
    "left": "", "right": "", "quad": " ", "qquad": " ", "mathrm": "", "displaystyle": "",
}
_SUPERSCRIPT = str.maketrans("0123456789+-=()n*", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿ*")
_SUBSCRIPT = str.maketrans("0123456789+-=()", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎")


def _command(found: re.Match[str]) -> str:
    name = found.group(1)
    return SYMBOLS.get(name, name)  # an author's own macro (\GVL) keeps its name


def _script(found: re.Match[str]) -> str:
    mark, body = found.group(1), found.group(2) or found.group(3)
    table = _SUPERSCRIPT if mark == "^" else _SUBSCRIPT
    mapped = body.translate(table)
    if all(ch != orig or ch == "*" for ch, orig in zip(mapped, body)):
        return mapped
    return f"{mark}{body}" if len(body) == 1 else f"{mark}({body})"


def _math(found: re.Match[str]) -> str:
    inner = _FONT_COMMAND.sub(r"\1", found.group(1))
    inner = _COMMAND.sub(_command, inner)
    inner = _SCRIPT.sub(_script, inner)
    return inner.replace("{", "").replace("}", "").strip()


# The same titles and snippets recur in thousands of digests. 2,048, not 8,192: a run's
# snippets are mostly distinct, and the larger cache held ≈ 6 MB in each render process
# (make bench: 34 % hits either way on titles and the snippets shared).
@functools.lru_cache(maxsize=2048)
def clean_text(text: str) -> str:
    """``text`` on one line, without the LaTeX that abstracts and titles carry over:
    ``20\\%`` → ``20%``, ``$^2$`` → ``²``, ``\\mathcal{O}(NT)`` / ``mathcal O(NT)`` → ``O(NT)``,
    ``~\\cite{x}`` and ``~fu2020d4rl`` removed, ``1)~a`` → ``1) a``, ``{\\it x}`` → ``x``."""
    text = one_line(text)
    if not any(mark in text for mark in _LATEX_MARKS):  # str scans: the regex cost 8 µs a snippet
        return text
    text = _CITATION.sub("", text)
    text = _BARE_CITATION.sub("", text)
    text = _URL_COMMAND.sub(lambda m: m.group(2) or m.group(1), text)
    text = _ESCAPED.sub(r"\1", text)
    text = _MATH.sub(_math, text)
    text = _OLD_FONT.sub(r"\1", text)
    text = _FONT_COMMAND.sub(r"\1", text)
    text = _BARE_FONT.sub("", text)
    text = _COMMAND.sub(_command, text)
    text = _NBSP_TILDE.sub(" ", text)
    if "{" in text or "}" in text:
        text = text.replace("{", "").replace("}", "")
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", _SPACES.sub(" ", text))
    return text.strip()


# ---------------------------------------------------------------- URLs

# Never valid unencoded in a URL, and each could end an attribute or a header's <...>.
_URL_FORBIDDEN = re.compile(r"[\s<>\"`\\\x00-\x1f\x7f]")
_URL_SAFE_CHARS = ":/?#[]@!$&'()*+,;=%~"
MAX_URL = 600  # characters; a longer paper link from a source is left out (it would crowd the mail)
HF_HOST = "huggingface.co"


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


def _source_url(url: object) -> str:
    found = safe_url(url)
    return found if len(found) <= MAX_URL else ""


def arxiv_id(paper_id: str) -> str:
    """The arXiv id a paper id is ("2506.01234", "cs/0112017v2"), else ""."""
    return paper_id if is_arxiv_id(paper_id) else ""


def arxiv_search_url(title: str) -> str:
    """arXiv's search by title: where a sample paper (whose id is made up) is found."""
    return f"https://arxiv.org/search/?query={quote_plus(one_line(title)[:200])}&searchtype=title"


def is_sample(paper: Paper) -> bool:
    """A paper of the bundled sample listings (their ids are not arXiv's)."""
    return paper.id.startswith("sample-")


@functools.lru_cache(maxsize=8192)
def paper_links(paper: Paper) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(the title's link, ((label, url), …) for the link row), only links that exist."""
    arxiv = arxiv_id(paper.id)
    page = _source_url(paper.url)
    on_hf = urlsplit(page).hostname == HF_HOST if page else False
    row: list[tuple[str, str]] = []
    if is_sample(paper):  # made-up ids: search for the real paper by its title
        row.append(("Find on arXiv", arxiv_search_url(paper.title)))
    if arxiv:
        row += [("arXiv", f"https://arxiv.org/abs/{arxiv}"), ("PDF", f"https://arxiv.org/pdf/{arxiv}")]
    if on_hf:
        row.append(("Hugging Face" if "?" not in page else "Find on Hugging Face", page))
    elif page and not arxiv:
        row.append(("Paper page", page))
    for label, url in (("Code", paper.github_repo), ("Project", paper.project_page)):
        if _source_url(url):
            row.append((label, _source_url(url)))
    title_url = row[0][1] if arxiv else page
    return title_url, tuple(row)


# ---------------------------------------------------------------- highlighting


def highlight(text: str, terms: Iterable[str], *, style: str = "",
              limit: int | None = None) -> Markup:
    """``text`` HTML-escaped, with whole-word, case-insensitive matches of ``terms`` in <span class="hl">
    (the first ``limit`` of them, if given)."""
    spans = term_spans(text, terms)
    return _marked(text, spans if limit is None else spans[:limit], style)


@functools.lru_cache(maxsize=64)  # a handful of styles, asked for per card
def _styled(style: str) -> str:
    return f' style="{escape(style)}"' if style else ""


def _marked(text: str, spans: Iterable[tuple[int, int]], style: str) -> Markup:
    # class "hl": the dark-mode styles recolour it (a <style> rule with !important)
    # a <span>, not <mark>: Outlook's Word engine does not know HTML5's elements
    opening = f'<span class="hl"{_styled(style)}>'
    pieces: list[str] = []
    position = 0
    # Text without a character to escape (most) is cut as it is: one escape, not one a piece.
    plain = not ESCAPED_CHARS.search(text)
    cut = str if plain else escape
    for start, end in spans:
        pieces += (cut(text[position:start]), opening, cut(text[start:end]), "</span>")
        position = end
    pieces.append(cut(text[position:]))
    return Markup("".join(pieces))


ESCAPED_CHARS = re.compile("[&<>\"']")  # what markupsafe.escape replaces


def window(text: str, spans: Sequence[tuple[int, int]], width: int) -> tuple[str, list[tuple[int, int]]]:
    """At most ``width`` characters of ``text`` around its first span, cut at words with "…",
    and the spans that fall inside, shifted to the cut text."""
    if len(text) <= width:
        return text, list(spans)
    first = spans[0][0] if spans else 0
    start = max(0, min(first - width // 4, len(text) - width))
    if start:
        space = text.find(" ", start, first if spans else start + width // 4)
        start = space + 1 if space >= 0 else start
    end = start + width
    if end < len(text):
        space = text.rfind(" ", start + width // 2, end)
        end = space if space > 0 else end
    cut = text[start:end].rstrip(" ,;:.-")
    lead = "\u2026" if start and not cut.startswith("\u2026") else ""
    tail = "\u2026" if end < len(text) and not cut.endswith("\u2026") else ""
    shift = len(lead) - start
    inside = [(a + shift, b + shift) for a, b in spans if a >= start and b <= start + len(cut)]
    return lead + cut + tail, inside


# ---------------------------------------------------------------- cards


class Fields(dict):
    """A dict whose keys are also its attributes. Jinja reads ``p.title`` with getattr first
    and by key only when that fails; on a plain dict the failure (an exception) costs more
    than the read, a thousand times per message. Built once, never changed (the attributes
    are a copy); keys are never the names of dict methods."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.__dict__.update(self)

    @classmethod
    def of(cls, *parts: dict[str, Any], **more: Any) -> "Fields":
        """The fields of ``parts`` and ``more``, in that order, each copied once (spreading
        them into the constructor made a dict per part first)."""
        fields = cls()
        for part in parts:
            fields.update(part)
        fields.update(more)
        fields.__dict__.update(fields)
        return fields


# The ranker's tiers (Match.tier): "exact" and "partial" matches are the keyword's own;
# "related" (related terms found in the paper, Match.via) and "liked" (like a paper the
# subscriber marked) bring papers in for another reason, shown on a dashed chip.
INDIRECT_TIERS = ("related", "liked")


def tier_of(match: Match) -> str:
    return getattr(match, "tier", "exact") or "exact"


def is_related(match: Match) -> bool:
    """A match for another reason than the keyword itself (a related term, a liked paper)."""
    return tier_of(match) in INDIRECT_TIERS


def via_of(match: Match) -> tuple[str, ...]:
    return tuple(getattr(match, "via", ()) or ())


def highlight_terms(matches: Iterable[Match]) -> tuple[str, ...]:
    """Surface forms to highlight: the keywords' own matches before related terms."""
    direct = [t for m in matches if not is_related(m) for t in (m.terms or (m.keyword,))]
    related = [t for m in matches if tier_of(m) == "related" for t in (*m.terms, *via_of(m))]
    return tuple(direct + related)


@functools.lru_cache(maxsize=8192)  # the ranker shares its Match objects between subscribers
def chip_label(match: Match) -> str:
    """What a chip says: the keyword, or why a paper came in without it."""
    label = getattr(match, "label", None)
    if isinstance(label, str) and label:  # the ranker words its own tiers
        label = one_line(label)
        if len(label) > CHIP_CHARS * 3 and label.endswith("\u201d"):  # “a long title” keeps its closing quote
            return shorten(label[:-1], CHIP_CHARS * 3 - 1) + "\u201d"
        return shorten(label, CHIP_CHARS * 3)
    keyword = shorten(one_line(match.keyword), CHIP_CHARS)
    tier, via = tier_of(match), via_of(match)
    named = ", ".join(shorten(one_line(t), CHIP_CHARS) for t in via[:CHIP_TERMS])
    if tier == "related":
        return f"related to {keyword}: {named}" if named else f"related to {keyword}"
    if tier == "liked":
        return f"like “{shorten(one_line(via[0]), CHIP_CHARS)}”" if via else f"like {keyword}"
    if tier == "partial" and named:
        return f"{named} (part of {keyword})"
    return keyword


def matched_line(matches: Iterable[Match]) -> str:
    """The plain-text explanation: "reward models (title, abstract), RL (abstract)"."""
    parts = []
    for m in matches:
        where = ", ".join(m.fields)
        parts.append(f"{chip_label(m)} ({where})" if where else chip_label(m))
    return ", ".join(parts)


def authors_line(authors: Sequence[str]) -> str:
    """"Ada Lovelace, Alan Turing … Yann LeCun": the first authors and the last one."""
    if len(authors) <= FIRST_AUTHORS + 1:
        return ", ".join(shorten(one_line(name), AUTHOR_CHARS) for name in authors)
    first = ", ".join(shorten(one_line(name), AUTHOR_CHARS) for name in authors[:FIRST_AUTHORS])
    return f"{first} \u2026 {shorten(one_line(authors[-1]), AUTHOR_CHARS)}"


def stats_line(paper: Paper) -> str:
    parts = []
    if paper.upvotes:
        parts.append(plural(paper.upvotes, "upvote"))
    if paper.comments:
        parts.append(plural(paper.comments, "comment"))
    if paper.github_stars:
        parts.append(f"{compact_count(paper.github_stars)} GitHub star{'s' if paper.github_stars != 1 else ''}")
    if paper.published and paper.published < paper.listed - timedelta(days=OLD_PAPER_DAYS):
        parts.append(f"published {format_day(paper.published)}")
    return " \u00b7 ".join(parts)


def _card_text(paper: Paper, snippet: str | None, terms: tuple[str, ...],
               style: str) -> tuple[str, str, Markup]:
    """(label, plain text, HTML) of a card's two lines: the TL;DR, else a snippet."""
    summary = clean_text(paper.ai_summary) if paper.ai_summary else ""
    if summary:
        text = shorten(summary, SUMMARY_CHARS)
        return "AI summary", text, highlight(text, terms, style=style, limit=MAX_MARKS)
    cleaned = clean_text(snippet or abstract_snippet(paper.abstract))
    if not cleaned:
        return "", "", Markup("")
    text, spans = window(cleaned, term_spans(cleaned, terms), CARD_TEXT_CHARS)
    return "", text, _marked(text, spans[:MAX_MARKS], style)


class _PaperPart(NamedTuple):
    """What a card shows that depends on the paper alone."""

    title: str
    short: str  # the title's opening, in link names
    url: str
    links: tuple[Fields, ...]
    links_html: Markup  # the link row
    authors: str
    stats: str


class _MatchPart(NamedTuple):
    """What a card shows that depends on why the paper matched."""

    chips: tuple[Fields, ...]
    chips_html: Markup
    more_chips: int
    matched: str


# A run mails the same few hundred papers to thousands of subscribers: the parts that
# depend on the paper alone, or on the (shared) Match objects alone, are made once, as
# the HTML the template puts in (a loop in the template cost a quarter of a digest), and
# kept as the card's fields (with the paper's id), ready to copy into each card.
@functools.lru_cache(maxsize=8192)
def _paper_part(paper: Paper, styles: Styles) -> dict[str, Any]:
    title = shorten(clean_text(paper.title), TITLE_CHARS)
    short = shorten(title, LINK_TITLE_CHARS)
    url, row = paper_links(paper)
    links = tuple(Fields(label=name, url=link, aria=f"{name}: {short}") for name, link in row)
    style = _styled(styles.link)
    links_html = Markup(" &middot;\n").join(
        Markup(f'<a class="link" href="{escape(link.url)}" aria-label="{escape(link.aria)}"{style}>'
               f'{escape(link.label)}</a>') for link in links)
    part = _PaperPart(title, short, url, links, links_html, authors_line(paper.authors), stats_line(paper))
    return {"id": paper.id, **part._asdict()}


# 2,048 keyword-match combinations, not 8,192: each holds its chips twice (a Fields is a
# dict and its __dict__), ≈ 12 MB a render process at 8,192 for ≈ 3 % of render CPU.
@functools.lru_cache(maxsize=2048)
def _match_part(matches: tuple[Match, ...], styles: Styles) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The card's fields that depend on the matches (`_MatchPart`), and the words to highlight."""
    bits = [_match_bits(m, styles) for m in matches]
    shown = [bit for bit in bits if bit.tier != "disliked"]
    pieces = [bit.chip_html for bit in shown[:MAX_CHIPS]]
    more = max(0, len(shown) - MAX_CHIPS)
    if more:
        pieces.append(f'<span class="chip-more"{_styled(styles.chip_more)}>+{more}</span>')
    part = _MatchPart(tuple(bit.chip for bit in shown[:MAX_CHIPS]), Markup(" ".join(pieces)), more,
                      ", ".join(bit.matched for bit in bits))
    return part._asdict(), highlight_terms(matches)


class _MatchBits(NamedTuple):
    """One match's share of a card: its chip (fields and HTML) and its words in the
    plain-text explanation (`matched_line`)."""

    tier: str
    chip: Fields
    chip_html: str
    matched: str


# Per match as well: a digest's combinations of matches mostly differ from the last 2,048
# (76,000 combinations of 38,000 matches on the bench's day).
@functools.lru_cache(maxsize=4096)
def _match_bits(match: Match, styles: Styles) -> _MatchBits:
    label, related = chip_label(match), is_related(match)
    if related:
        html = f'<span class="chip-related"{_styled(styles.chip_related)}>{escape(label)}</span>'
    else:
        html = f'<span class="chip"{_styled(styles.chip)}>{escape(label)}</span>'
    where = ", ".join(match.fields)
    return _MatchBits(tier_of(match), Fields(label=label, related=related), html,
                      f"{label} ({where})" if where else label)


# A card's fields that differ from one subscriber to the next; the others (`_paper_part`)
# depend on the paper alone (flows/fragments.py makes the markup of those once per paper).
SUBSCRIBER_FIELDS = ("chips", "chips_html", "more_chips", "matched", "text_label", "text", "text_html",
                     "more_like", "less_like")


def paper_card(ranked: RankedPaper, links: DigestLinks | None = None, styles: Styles = NO_STYLES) -> Fields:
    """Everything one paper's card shows, for the HTML and the plain-text templates."""
    paper = ranked.paper
    why, terms = _match_part(ranked.matches, styles)
    label, text, text_html = _card_text(paper, getattr(ranked, "snippet", None), terms, styles.mark)
    more = less = ""
    if links is not None and links.feedback:  # signed per paper
        more, less = links.feedback_links(paper.id)
    return Fields.of(_paper_part(paper, styles), why, text_label=label, text=text, text_html=text_html,
                     more_like=more, less_like=less)


def trending_item(paper: Paper) -> Fields:
    title_url, _ = paper_links(paper)
    return Fields(title=shorten(clean_text(paper.title), TRENDING_CHARS), url=title_url,
                  votes=plural(paper.upvotes, "upvote"))


# ---------------------------------------------------------------- the digest as a whole


def period_of(digest: Digest, subscriber: Subscriber) -> str:
    """"daily", "weekly" or "catch-up"."""
    return digest.period if digest.period in PERIODS else subscriber.frequency


def keyword_counts(papers: Iterable[RankedPaper]) -> tuple[list[tuple[str, int]], int]:
    """Papers per keyword that matched directly (most first), and the papers that only a
    related term brought in."""
    counts: dict[str, int] = {}  # ties keep the order the keywords first matched in
    related_only = 0
    for ranked in papers:
        direct = dict.fromkeys(m.keyword for m in ranked.matches if not is_related(m))
        for keyword in direct:
            counts[keyword] = counts.get(keyword, 0) + 1
        related_only += not direct and bool(ranked.matches)
    return sorted(counts.items(), key=lambda item: -item[1]), related_only


def covered(digest: Digest, period: str) -> str:
    """The days a digest covers, for the headline and subject."""
    day = digest.digest_date
    if period == "weekly":
        return format_range(day - timedelta(days=6), day)
    if period == "catch-up" and digest.since:
        return format_range(digest.since, day)
    return format_day(day)


def summary_line(counts: list[tuple[str, int]], related: int) -> str:
    """Papers per keyword under the headline: "reward models 5 · world models 4 · 3 related"."""
    parts = [f"{shorten(keyword, CHIP_CHARS)} {n}" for keyword, n in counts[:SUMMARY_KEYWORDS]]
    if len(counts) > SUMMARY_KEYWORDS:
        parts.append(f"{len(counts) - SUMMARY_KEYWORDS} more keyword{'s' if len(counts) - SUMMARY_KEYWORDS > 1 else ''}")
    if related:
        parts.append(f"{related} related")
    return " \u00b7 ".join(parts)


def subject_for(count: int, period: str, when: str, counts: list[tuple[str, int]]) -> str:
    """Leads with what is inside: the keywords that matched most, then how many papers and when."""
    if not count:
        quiet = {"weekly": "this week", "catch-up": "in this range"}.get(period, "today")
        return f"No new papers for your keywords {quiet} \u00b7 {when}"
    named = [shorten(keyword, CHIP_CHARS) for keyword, _ in counts[:SUBJECT_KEYWORDS]]
    lead = ", ".join(named) + (" and more" if len(counts) > SUBJECT_KEYWORDS else "")
    lead = lead or "Related papers"
    lead = lead[0].upper() + lead[1:]
    papers = plural(count, "paper")
    if period == "weekly":
        return f"{lead}: {papers} this week \u00b7 {when}"
    if period == "catch-up":
        return f"{lead}: {papers} to catch up on \u00b7 {when}"
    return f"{lead}: {plural(count, 'new paper')} \u00b7 {when}"


def headline_for(count: int, period: str) -> str:
    if period == "weekly":
        return f"{plural(count, 'paper')} this week" if count else "No new papers this week"
    if period == "catch-up":
        return f"{plural(count, 'paper')} to catch up on" if count else "Nothing to catch up on"
    return f"{plural(count, 'new paper')} for you" if count else "No new papers today"


def kicker_for(period: str, when: str) -> str:
    """The line above the headline: "Paperboy · weekly · 2–8 Dec 2025"."""
    kind = {"weekly": "weekly \u00b7 ", "catch-up": "catch-up \u00b7 "}.get(period, "")
    return f"Paperboy \u00b7 {kind}{when}"


def reason(subscriber: Subscriber, period: str) -> str:
    kind = "weekly" if period == "weekly" else "daily" if period == "daily" else "catch-up"
    who = f"You get this {kind} digest because {subscriber.email} subscribed to Paperboy"
    if not subscriber.keywords:
        return f"{who} for trending papers."
    shown = ", ".join(shorten(k, CHIP_CHARS) for k in subscriber.keywords[:10])
    if len(subscriber.keywords) > 10:
        shown += f" and {len(subscriber.keywords) - 10} more"
    return f"{who} with the keywords: {shown}."


def digest_context(digest: Digest, subscriber: Subscriber, links: DigestLinks, *,
                   shown: int | None = None, web: bool = False,
                   styles: Styles = NO_STYLES) -> dict[str, Any]:
    """Everything both templates (and the web view and preview) need, from one digest.

    ``shown``: how many papers the mail lists (the rest are on its web view); all of
    them by default. ``web``: the context of the web view page, not of a mail.
    ``styles``: for the markup built here (see `Styles`).
    """
    papers = digest.papers
    total = len(papers)
    shown = total if shown is None else max(0, min(shown, total))
    period = period_of(digest, subscriber)
    when = covered(digest, period)
    counts, related = keyword_counts(papers)
    cards = [paper_card(ranked, links, styles) for ranked in papers[:shown]]
    top = cards[0]["title"] if cards else ""
    preheader = (f"{top} \u00b7 and {plural(total - 1, 'more paper')}" if total > 1 else top) or (
        "Nothing new matched your keywords.")
    return {
        "subject": subject_for(total, period, when, counts),
        "kicker": kicker_for(period, when),
        "headline": headline_for(total, period),
        "summary": summary_line(counts, related),
        "preheader": preheader,
        "papers": cards,
        "total": total,
        "hidden": total - shown,  # listed on the web view only
        "trending": [trending_item(paper) for paper in digest.trending],
        "links": links,
        "web_view": safe_url(links.web_view) if not web else "",
        "web": web,
        "sample": any(is_sample(r.paper) for r in papers) or any(is_sample(p) for p in digest.trending),
        "reason": reason(subscriber, period),
        "period": period,
        "digest_date": digest.digest_date,
    }
