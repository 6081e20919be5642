"""``sources=`` specs → Source objects. The one place that knows every source type.

A spec is what a user types in ``sources=`` and what Earful stores, in canonical form:
``rss:<url>``, ``hn``, ``reddit``, ``reddit:r/<sub>``, ``mastodon:<instance>``, ``bluesky``,
``stackexchange:<site>``, ``github``, ``appstore:<app id>:<country>``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from watchers.base import Source
from watchers.http import HttpFetcher, UnsafeURLError, check_url_syntax
from watchers.source_settings import SourceSettings

SUPPORTED_SOURCES = (
    "rss:<feed url>, hn, reddit, reddit:r/<subreddit>, mastodon:<instance>, bluesky, "
    "stackexchange:<site>, github, appstore:<app id>[:<country>]"
)

_SUBREDDIT = re.compile(r"^(?:/?r/)?([A-Za-z0-9][A-Za-z0-9_]{1,20})/?$")
_SE_SITE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,60}$")
_APP_ID = re.compile(r"^(?:id)?(\d{5,12})$")
_COUNTRY = re.compile(r"^[a-z]{2}$")


class UnknownSource(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class SourceType:
    name: str
    module: str  # watchers.<module>
    factory: str  # class name; called as factory(argument, fetcher=…, settings=…)
    needs_argument: bool | None  # True: "type:arg" only; False: bare only; None: both


SOURCE_TYPES: dict[str, SourceType] = {
    "rss": SourceType("rss", "watchers.rss", "RssSource", True),
    "hn": SourceType("hn", "watchers.hackernews", "HackerNewsSource", False),
    "reddit": SourceType("reddit", "watchers.reddit", "RedditSource", None),
    "mastodon": SourceType("mastodon", "watchers.mastodon", "MastodonSource", True),
    "bluesky": SourceType("bluesky", "watchers.bluesky", "BlueskySource", False),
    "stackexchange": SourceType(
        "stackexchange", "watchers.stackexchange", "StackExchangeSource", True
    ),
    "github": SourceType("github", "watchers.github", "GitHubSource", False),
    "appstore": SourceType("appstore", "watchers.appstore", "AppStoreSource", True),
}


def source_type(spec: str) -> str:
    return spec.partition(":")[0]


def normalize_source(text: str, *, allow_private: bool = False) -> str:
    """Validate a source as a user typed it and return its canonical spec."""
    raw = text.strip()
    kind, sep, argument = raw.partition(":")
    kind = kind.lower()
    argument = argument.strip()
    if kind in ("http", "https"):
        raise UnknownSource(f"`{_quote(raw)}` needs a type: write rss:{raw}.")
    if kind in ("stackoverflow", "so"):
        kind, sep, argument = "stackexchange", ":", "stackoverflow"
    if kind not in SOURCE_TYPES:
        raise UnknownSource(f"`{_quote(raw)}` is not a source I know.")
    needs = SOURCE_TYPES[kind].needs_argument
    if needs is True and not argument:
        raise UnknownSource(f"`{kind}` needs a value, like {_example(kind)}.")
    if needs is False and (sep or argument):
        raise UnknownSource(f"`{kind}` takes no value: write just `{kind}`.")
    normalizer = _NORMALIZERS.get(kind)
    if normalizer is None or not argument:
        return kind
    return f"{kind}:{normalizer(argument, raw, allow_private)}"


def _rss(argument: str, raw: str, allow_private: bool) -> str:
    try:
        return check_url_syntax(argument, allow_private=allow_private)
    except UnsafeURLError as exc:
        raise UnknownSource(f"`{_quote(raw)}`: {exc}") from None


def _reddit(argument: str, raw: str, _: bool) -> str:
    match = _SUBREDDIT.match(argument)
    if not match:
        raise UnknownSource(f"`{_quote(raw)}`: write a subreddit as reddit:r/<name>.")
    return f"r/{match.group(1).lower()}"


def _mastodon(argument: str, raw: str, allow_private: bool) -> str:
    url = argument if "://" in argument else f"https://{argument}"
    try:
        checked = check_url_syntax(url, allow_private=allow_private)
    except UnsafeURLError as exc:
        raise UnknownSource(f"`{_quote(raw)}`: {exc}") from None
    from yarl import URL

    parsed = URL(checked)
    if parsed.path not in ("", "/") or parsed.query_string:
        raise UnknownSource(
            f"`{_quote(raw)}`: give just the instance, like mastodon:mastodon.social."
        )
    host = parsed.host or ""
    port = f":{parsed.port}" if parsed.port and not parsed.is_default_port() else ""
    # Plain https instances are stored as the bare host, the way people name them.
    return host + port if parsed.scheme == "https" else f"{parsed.scheme}://{host}{port}"


def _stackexchange(argument: str, raw: str, _: bool) -> str:
    site = argument.lower().removesuffix(".com")
    if not _SE_SITE.match(site):
        raise UnknownSource(f"`{_quote(raw)}`: name a site like stackexchange:stackoverflow.")
    return site


def _appstore(argument: str, raw: str, _: bool) -> str:
    app, _sep, country = argument.lower().partition(":")
    match = _APP_ID.match(app)
    country = country or "us"
    if not match or not _COUNTRY.match(country):
        raise UnknownSource(
            f"`{_quote(raw)}`: write appstore:<numeric app id>[:<two-letter country>], "
            "like appstore:284882215:us."
        )
    return f"{match.group(1)}:{country}"


_NORMALIZERS: dict[str, Callable[[str, str, bool], str]] = {
    "rss": _rss,
    "reddit": _reddit,
    "mastodon": _mastodon,
    "stackexchange": _stackexchange,
    "appstore": _appstore,
}


def _example(kind: str) -> str:
    return {
        "rss": "rss:https://example.com/feed.xml",
        "mastodon": "mastodon:mastodon.social",
        "stackexchange": "stackexchange:stackoverflow",
        "appstore": "appstore:284882215:us",
    }.get(kind, kind)


def build_source(
    spec: str, *, fetcher: HttpFetcher, settings: SourceSettings | None = None
) -> Source:
    kind, _, argument = spec.partition(":")
    source = SOURCE_TYPES.get(kind)
    if source is None:
        raise UnknownSource(f"`{_quote(spec)}` is not a source I know.")
    factory = getattr(importlib.import_module(source.module), source.factory)
    built: Source = factory(
        argument or None, fetcher=fetcher, settings=settings or SourceSettings()
    )
    return built


# Source types whose post ids are unique across all their specs: the same Reddit post found
# by `reddit` and `reddit:r/x`, or a federated Mastodon status seen on two instances.
_GLOBAL_IDS = frozenset({"reddit", "mastodon", "hn", "bluesky", "github"})


def origin(spec: str) -> str:
    """The namespace in which a source's external ids are unique."""
    kind = source_type(spec)
    return kind if kind in _GLOBAL_IDS else spec


def source_url(spec: str) -> str | None:
    """The user-supplied URL inside a spec, if it has one (for the private-address check)."""
    kind, _, argument = spec.partition(":")
    if kind == "rss":
        return argument
    if kind == "mastodon":
        return argument if "://" in argument else f"https://{argument}"
    return None


def _quote(text: str) -> str:
    text = text if len(text) <= 80 else text[:79] + "…"
    return text.replace("`", "'").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
