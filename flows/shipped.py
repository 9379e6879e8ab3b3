"""Settings and subscribers as plain values, for the render processes (flows/makers.py).

Takes a validated `Settings` or `Subscriber` (pydantic models); gives a frozen copy of its
values that unpickles without pydantic. A render process ranks and renders with these, and
so never imports pydantic, pydantic-settings (with asyncio and dotenv), email-validator or
ruamel.yaml: ≈ 15 MB of the render process's memory, which nothing there needs, since
validation happened where the values were read. Nothing deep in the pipeline may tell the
two apart: they answer the same attributes (a test compares them field by field), and the
two methods ranking and rendering call, `wants` and `display_name`, are one code here for
both (`Subscriber` calls the functions below).

The secrets (`SecretStr` settings: the SMTP and IMAP passwords, the signing key) are shipped
as None: a render process gets the link-signing key on its own, and sends nothing. Any other
value goes as it is: a setting of some other pydantic type would bring pydantic back into the
render process (a test says so) rather than go missing.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flows.models import Paper
    from flows.settings import Settings
    from flows.subscribers import Subscriber

def wants(subscriber: Any, paper: Paper) -> bool:
    """Whether a paper can be in this subscriber's digest at all: from one of their
    `sources` (if given), and in one of their arXiv `categories` (if given; papers that
    carry no category, such as Hugging Face-only listings, are not filtered by it)."""
    if subscriber.sources is not None and paper.source not in subscriber.sources:
        return False
    if subscriber.categories is not None and paper.categories:
        return bool(set(paper.categories) & set(subscriber.categories))
    return True


def display_name(subscriber: Any) -> str:
    return subscriber.name or subscriber.email.split("@", 1)[0]


@dataclass(frozen=True, slots=True)
class PlainSubscriber:
    """A `Subscriber`'s values (all of them but `suppressed`, which only the files and the
    bounce handling read)."""

    email: str
    name: str
    keywords: list[str]
    exclude: list[str]
    max_papers: int
    frequency: str
    weekday: str
    include_trending: bool
    popularity: float
    send_empty: bool
    related: str
    active: bool
    sources: list[str] | None
    categories: list[str] | None

    def wants(self, paper: Paper) -> bool:
        return wants(self, paper)

    @property
    def display_name(self) -> str:
        return display_name(self)


SUBSCRIBER_FIELDS = tuple(f.name for f in fields(PlainSubscriber))


def plain_subscriber(subscriber: Subscriber | PlainSubscriber) -> PlainSubscriber:
    if isinstance(subscriber, PlainSubscriber):
        return subscriber
    return PlainSubscriber(**{name: getattr(subscriber, name) for name in SUBSCRIBER_FIELDS})


class PlainSettings:
    """A `Settings`' field values as attributes, and `from_domain`; read-only."""

    def __init__(self, values: dict[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))
        self.__dict__.update(values)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __reduce__(self) -> tuple:
        return (PlainSettings, (self._values,))

    def __repr__(self) -> str:
        return f"<PlainSettings of {len(self._values)} values>"


def plain_settings(settings: Settings | PlainSettings) -> PlainSettings:
    if isinstance(settings, PlainSettings):
        return settings
    values = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        values[name] = None if hasattr(value, "get_secret_value") else value  # secrets stay here
    values["from_domain"] = settings.from_domain
    return PlainSettings(values)
