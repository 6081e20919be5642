"""RssSource against real local aiohttp servers serving RSS 2.0, Atom 1.0 and broken bodies."""

from __future__ import annotations

import json
import logging
import time
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from watchers.base import RAW_PAYLOAD_CAP, SourceBlocked, SourceError, SourceState
from watchers.http import FetchPolicy, HttpFetcher, UnsafeURLError
from watchers.rss import RssSource, html_to_text

RSS_TYPE = "application/rss+xml"


@dataclass
class FeedServer:
    """Serves one body per path and records the headers of every request."""

    base: str = ""
    bodies: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # body, content type
    validators: dict[str, dict[str, str]] = field(default_factory=dict)  # ETag, Last-Modified
    requests: list[dict[str, str]] = field(default_factory=list)

    def add(
        self,
        path: str,
        body: bytes | str,
        content_type: str = "application/rss+xml",
        **headers: str,
    ) -> str:
        self.bodies[path] = (body.encode() if isinstance(body, str) else body, content_type)
        self.validators[path] = {name.replace("_", "-"): value for name, value in headers.items()}
        return self.base + path

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.headers))
        if request.path not in self.bodies:
            raise web.HTTPNotFound()
        body, content_type = self.bodies[request.path]
        validators = self.validators[request.path]
        etag = validators.get("ETag")
        if etag and request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=validators)
        response = web.Response(body=body, headers=validators)
        response.headers["Content-Type"] = content_type
        return response


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    feeds = FeedServer()
    app = web.Application()
    app.router.add_get("/{path:.*}", feeds.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    feeds.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield feeds
    await runner.cleanup()


@pytest.fixture
async def fetcher() -> AsyncIterator[HttpFetcher]:
    async with HttpFetcher(FetchPolicy(allow_private=True, timeout_seconds=5)) as f:
        yield f


RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel>
  <title>Acme Blog</title>
  <link>https://acme.example/</link>
  <language>en-US</language>
  <item>
    <title>Acme &amp; the  new
      release</title>
    <link>https://acme.example/posts/1</link>
    <guid isPermaLink="false">acme-post-1</guid>
    <author>jane@acme.example (Jane Doe)</author>
    <description>&lt;p&gt;We &lt;b&gt;love&lt;/b&gt; it&lt;/p&gt;&lt;p&gt;Caf&amp;eacute;
      &amp;amp; more&lt;/p&gt;</description>
    <pubDate>Tue, 02 Jan 2024 10:00:00 +0200</pubDate>
  </item>
  <item>
    <title>Second</title>
    <link>https://acme.example/posts/2</link>
    <description>Plain words.</description>
    <pubDate>Wed, 03 Jan 2024 09:30:00 GMT</pubDate>
  </item>
</channel>
</rss>
"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="fr">
  <title>Le Blog</title>
  <id>urn:uuid:feed</id>
  <updated>2024-01-03T17:00:00Z</updated>
  <entry>
    <title type="html">&lt;em&gt;Bonjour&lt;/em&gt; Acme</title>
    <id>urn:uuid:entry-1</id>
    <link rel="alternate" href="/posts/bonjour"/>
    <updated>2024-01-03T12:00:00-05:00</updated>
    <author><name>Zoé</name><email>zoe@example.com</email></author>
    <summary>court</summary>
    <content type="html">&lt;p&gt;Salut &amp;amp; merci&lt;/p&gt;
      &lt;style&gt;p{color:red}&lt;/style&gt;</content>
  </entry>
  <entry>
    <title>Texte brut &lt;pas une balise&gt;</title>
    <id>urn:uuid:entry-2</id>
    <link rel="alternate" href="https://blog.example/2"/>
    <published>2024-01-01T08:00:00+01:00</published>
    <updated>2024-01-02T08:00:00+01:00</updated>
    <content type="text">a &lt; b</content>
  </entry>
</feed>
"""


def rss_items(*items: str, title: str = "Feed") -> str:
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>'
        + title
        + "</title>"
        + "".join(items)
        + "</channel></rss>"
    )


async def test_rss20_entries_become_posts(server: FeedServer, fetcher: HttpFetcher) -> None:
    url = server.add("/feed.xml", RSS)
    source = RssSource(url, fetcher)
    result = await source.fetch(SourceState())

    assert source.spec == f"rss:{url}"
    assert not result.not_modified
    first, second = result.posts
    assert first.source == f"rss:{url}"
    assert first.external_id == "acme-post-1"
    assert first.url == "https://acme.example/posts/1"
    assert first.author == "Jane Doe"
    assert first.title == "Acme & the new release"
    assert first.text == "We love it Café & more"
    assert first.published_at == datetime(2024, 1, 2, 8, 0, tzinfo=UTC)
    assert first.language == "en-us"
    assert first.raw is not None
    assert json.loads(first.raw)["id"] == "acme-post-1"
    # No guid: the link is the id.
    assert second.external_id == "https://acme.example/posts/2"
    assert second.text == "Plain words."
    assert second.published_at == datetime(2024, 1, 3, 9, 30, tzinfo=UTC)
    assert second.author == "Acme Blog"  # no author: the feed's title


async def test_atom10_entries_become_posts(server: FeedServer, fetcher: HttpFetcher) -> None:
    url = server.add("/atom", ATOM, "application/atom+xml")
    first, second = (await RssSource(url, fetcher).fetch(SourceState())).posts

    assert first.external_id == "urn:uuid:entry-1"
    # Relative links resolve against the URL the feed was fetched from.
    assert first.url == server.base + "/posts/bonjour"
    assert first.title == "Bonjour Acme"
    assert first.text == "Salut & merci"  # content preferred over summary; style dropped
    assert first.author == "Zoé"
    assert first.published_at == datetime(2024, 1, 3, 17, 0, tzinfo=UTC)
    assert first.published_at is not None and first.published_at.tzinfo is UTC
    assert first.language == "fr"

    assert second.title == "Texte brut <pas une balise>"  # type="text" is not HTML
    assert second.text == "a < b"
    assert second.published_at == datetime(2024, 1, 1, 7, 0, tzinfo=UTC)  # published wins
    assert second.author == "Le Blog"


async def test_ids_fall_back_to_a_stable_hash(server: FeedServer, fetcher: HttpFetcher) -> None:
    feed = rss_items(
        "<item><title>Only a title</title><pubDate>Mon, 01 Jan 2024 00:00:00 GMT</pubDate></item>",
        "<item><title>Another title</title><pubDate>Mon, 01 Jan 2024 00:00:00 GMT</pubDate></item>",
        "<item><title>Script link</title><link>javascript:alert(1)</link></item>",
    )
    source = RssSource(server.add("/f", feed), fetcher)
    first_poll = (await source.fetch(SourceState())).posts
    second_poll = (await source.fetch(SourceState())).posts

    ids = [post.external_id for post in first_poll]
    assert ids == [post.external_id for post in second_poll]
    assert len(set(ids)) == 3
    assert all(i.startswith("sha256:") for i in ids)
    assert first_poll[2].url is None


async def test_conditional_get_answers_not_modified(
    server: FeedServer, fetcher: HttpFetcher
) -> None:
    stamp = "Wed, 03 Jan 2024 09:30:00 GMT"
    source = RssSource(server.add("/feed", RSS, ETag='"v1"', Last_Modified=stamp), fetcher)

    first = await source.fetch(SourceState())
    assert len(first.posts) == 2
    assert first.state.etag == '"v1"'
    assert first.state.last_modified == stamp
    assert "If-None-Match" not in server.requests[0]

    second = await source.fetch(first.state)
    assert second.not_modified is True
    assert second.posts == []
    assert second.state == first.state
    assert server.requests[1]["If-None-Match"] == '"v1"'
    assert server.requests[1]["If-Modified-Since"] == stamp


async def test_cursor_reports_newest_date_without_filtering(
    server: FeedServer, fetcher: HttpFetcher
) -> None:
    source = RssSource(server.add("/feed", RSS), fetcher)
    result = await source.fetch(SourceState())
    assert result.state.cursor == "2024-01-03T09:30:00+00:00"

    # A later cursor from an earlier poll neither hides entries nor moves backwards.
    later = "2030-01-01T00:00:00+00:00"
    again = await source.fetch(SourceState(cursor=later))
    assert len(again.posts) == 2
    assert again.state.cursor == later


async def test_empty_feed_is_an_empty_result(server: FeedServer, fetcher: HttpFetcher) -> None:
    result = await RssSource(server.add("/f", rss_items()), fetcher).fetch(SourceState())
    assert result.posts == []
    assert result.not_modified is False
    assert result.state.cursor is None


async def test_malformed_xml_is_an_error(server: FeedServer, fetcher: HttpFetcher) -> None:
    broken = '<?xml version="1.0"?><rss version="2.0"><channel><title>x</title><item><title>'
    source = RssSource(server.add("/f", broken), fetcher)
    with pytest.raises(SourceError, match=r"^malformed feed: ") as caught:
        await source.fetch(SourceState())
    assert not isinstance(caught.value, SourceBlocked)


async def test_xml_that_is_not_a_feed_is_an_error(server: FeedServer, fetcher: HttpFetcher) -> None:
    source = RssSource(server.add("/f", "<?xml version='1.0'?><note>hi</note>"), fetcher)
    with pytest.raises(SourceError, match="not an RSS or Atom feed"):
        await source.fetch(SourceState())


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE rss [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>t</title>
<item><title>&lol9;</title><guid>1</guid></item>
</channel></rss>
"""


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(BILLION_LAUGHS, id="billion-laughs"),
        # Junk up front makes it malformed, so only a lenient parser would go on to read it.
        pytest.param("junk" + BILLION_LAUGHS.split("\n", 1)[1], id="malformed-billion-laughs"),
        pytest.param(BILLION_LAUGHS.encode("utf-16"), id="utf-16-bomb"),
        # An external DTD is tolerated (RSS 0.91), so it must not smuggle an internal subset.
        pytest.param(
            BILLION_LAUGHS.replace("<!DOCTYPE rss [", '<!DOCTYPE rss SYSTEM "http://x.test/d" ['),
            id="billion-laughs-with-external-dtd",
        ),
        pytest.param(
            '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            '<rss version="2.0"><channel><item><title>&xxe;</title></item></channel></rss>',
            id="external-entity",
        ),
        pytest.param(
            '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY big "'
            + "A" * 100_000
            + '">]><rss version="2.0"><channel><item><title>'
            + "&big;" * 1_000
            + "</title></item></channel></rss>",
            id="quadratic-blowup",
        ),
    ],
)
async def test_xml_bombs_are_refused_quickly(
    server: FeedServer, fetcher: HttpFetcher, body: str | bytes
) -> None:
    source = RssSource(server.add("/bomb", body), fetcher)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(SourceError, match="declares XML entities"):
            await source.fetch(SourceState())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 2
    assert peak < 20_000_000


async def test_netscape_doctype_without_entities_is_accepted(
    server: FeedServer, fetcher: HttpFetcher
) -> None:
    feed = (
        '<?xml version="1.0"?>\n<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"'
        ' "http://my.netscape.com/publish/formats/rss-0.91.dtd">\n'
        '<rss version="0.91"><channel><title>Old</title><link>https://old.example/</link>'
        "<item><title>Still here</title><link>https://old.example/1</link></item>"
        "</channel></rss>"
    )
    posts = (await RssSource(server.add("/091", feed), fetcher).fetch(SourceState())).posts
    assert [(p.external_id, p.title) for p in posts] == [("https://old.example/1", "Still here")]


LOGIN_WALL = """<!DOCTYPE html>
<html><head><title>Sign in</title></head>
<body><form action="/login"><input name="user"></form></body></html>
"""


@pytest.mark.parametrize("content_type", ["text/html", "application/xml", "application/rss+xml"])
async def test_html_page_instead_of_a_feed_is_blocked(
    server: FeedServer, fetcher: HttpFetcher, content_type: str
) -> None:
    source = RssSource(server.add("/feed", LOGIN_WALL, content_type), fetcher)
    with pytest.raises(SourceBlocked, match="got an HTML page instead of a feed"):
        await source.fetch(SourceState())


async def test_feed_served_as_text_html_is_still_read(
    server: FeedServer, fetcher: HttpFetcher
) -> None:
    posts = (
        await RssSource(server.add("/f", RSS, "text/html"), fetcher).fetch(SourceState())
    ).posts
    assert [p.external_id for p in posts] == ["acme-post-1", "https://acme.example/posts/2"]


async def test_one_broken_entry_does_not_hide_the_others(
    server: FeedServer, fetcher: HttpFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    feed = rss_items(
        '<item><title>Good one</title><guid isPermaLink="false">a</guid></item>',
        "<item><description>no id, link, title or date</description></item>",
        '<item><title>Good two</title><guid isPermaLink="false">b</guid></item>',
    )
    url = server.add("/f", feed)
    with caplog.at_level(logging.WARNING, logger="watchers.rss"):
        posts = (await RssSource(url, fetcher).fetch(SourceState())).posts
    assert [p.external_id for p in posts] == ["a", "b"]
    [record] = [r for r in caplog.records if r.name == "watchers.rss"]
    assert "skipping malformed entry #1 of rss:" + url in record.getMessage()
    assert record.exc_info is not None


async def test_body_is_never_opened_as_a_file_name(
    server: FeedServer, fetcher: HttpFetcher, tmp_path: Path
) -> None:
    # feedparser.parse(bytes) tries open(bytes) first: a body naming a local feed file would
    # make us read that file instead.
    local = tmp_path / "local-feed.xml"
    local.write_text(rss_items("<item><title>local secret</title><guid>s</guid></item>"))
    source = RssSource(server.add("/f", str(local)), fetcher)
    with pytest.raises(SourceError, match="malformed feed"):
        await source.fetch(SourceState())


async def test_http_errors_and_refusals_propagate(server: FeedServer, fetcher: HttpFetcher) -> None:
    with pytest.raises(SourceError, match="HTTP 404"):
        await RssSource(server.base + "/missing", fetcher).fetch(SourceState())
    with pytest.raises(UnsafeURLError, match="only http and https"):
        await RssSource("file:///etc/passwd", fetcher).fetch(SourceState())


async def test_huge_entries_are_capped(server: FeedServer, fetcher: HttpFetcher) -> None:
    words = "word " * 50_000
    feed = rss_items(
        f"<item><title>Big</title><guid>big</guid><description>{words}</description></item>"
    )
    [post] = (await RssSource(server.add("/f", feed), fetcher).fetch(SourceState())).posts
    assert post.raw is not None and len(post.raw) == RAW_PAYLOAD_CAP
    assert 0 < len(post.text) <= 20_000


def test_html_to_text() -> None:
    markup = (
        "<div><h1>Title</h1><p>One&nbsp;&amp; <a href='x'>two</a></p>"
        "<script>alert('no')</script><style>.a{}</style>"
        "<ul><li>three</li><li>four</li></ul>   five&lt;six&gt;<br/>seven &#128512;</div>"
    )
    assert html_to_text(markup) == "Title One & two three four five<six> seven 😀"


async def test_author_names_lose_their_email_addresses(
    server: FeedServer, fetcher: HttpFetcher
) -> None:
    feed = (
        '<?xml version="1.0"?><rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        "<channel><title>F</title>"
        "<item><guid>https://f.example/1</guid><author>a@mail.example (Ann Lee)</author></item>"
        "<item><guid>https://f.example/2</guid><author>Bo Yu &lt;bo@x.io&gt;</author></item>"
        "<item><guid>https://f.example/3</guid><dc:creator>Cy Ode</dc:creator></item>"
        "<item><guid>https://f.example/4</guid><author>only@mail.example</author></item>"
        "</channel></rss>"
    )
    posts = (await RssSource(server.add("/f", feed), fetcher).fetch(SourceState())).posts
    assert [p.author for p in posts] == ["Ann Lee", "Bo Yu", "Cy Ode", "only@mail.example"]
