"""Every public API Earful reads, played by one local server, with posts that mention Acme.

Each source answers in its documented shape (a realistic subset of the fields) and honours the
parameters Earful pages with (``numericFilters``, ``before``/``after``, ``min_id``, ``since``,
``fromdate``, ``created:>=``), so a second poll sees only what a real API would show it.
``publish(round)`` adds a round of posts; ``expected`` lists the ones that should become
mentions, with the source spec they must be stored under.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from tests.support.feeds import FeedItem, rss
from tests.support.local_http import LocalServer

APP_ID = "284882215"
SUBREDDIT = "acmeusers"
SE_SITE = "stackoverflow"
HOUR = 3_600
ROUND_SECONDS = 600  # each round of posts is this much newer than the one before
CUPERTINO = timezone(timedelta(hours=-7))  # Apple writes review times in its own zone
_BASE32_SORTABLE = "234567abcdefghijklmnopqrstuvwxyz"

# Where each API lives on the server; the settings below point Earful at these prefixes.
PATHS = {
    "hn": "/hn/api/v1/search_by_date",
    "reddit_search": "/reddit/search.json",
    "reddit_new": f"/reddit/r/{SUBREDDIT}/new.json",
    "reddit_comments": f"/reddit/r/{SUBREDDIT}/comments.json",
    "mastodon": "/api/v1/timelines/tag/acme",  # the instance is the server itself
    "bluesky": "/bsky/xrpc/app.bsky.feed.searchPosts",
    "stackexchange": "/se/2.3/search/advanced",
    "github": "/github/search/issues",
    "appstore": f"/itunes/us/rss/customerreviews/page=1/id={APP_ID}/sortby=mostrecent/json",
    "rss": "/blog/acme/feed.xml",
}
APPLE_FEED = "https://itunes.apple.com" + PATHS["appstore"].removeprefix("/itunes")
# A card names its source the way people do.
LABELS = {
    "hn": "Hacker News",
    "reddit": "Reddit",
    "mastodon": "Mastodon",
    "bluesky": "Bluesky",
    "stackexchange": "Stack Exchange",
    "github": "GitHub",
    "appstore": "App Store",
    "rss": "RSS",
}


@dataclass(frozen=True)
class Expected:
    source: str  # the canonical source spec the mention must carry
    external_id: str
    round: int
    # Other sources of the watch that also return this post: Reddit's site-wide search finds
    # the posts of r/acmeusers too.
    also: tuple[str, ...] = ()

    @property
    def keys(self) -> set[tuple[str, str]]:
        return {(source, self.external_id) for source in (self.source, *self.also)}

    @property
    def label(self) -> str:
        return LABELS[self.source.partition(":")[0]]


def iso_z(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


def tid(epoch: int, clock_id: int) -> str:
    """An atproto record key: microseconds and a clock id, base32-sortable, 13 characters."""
    value = (epoch * 1_000_000 << 10) | clock_id
    text = ""
    for _ in range(13):
        text = _BASE32_SORTABLE[value & 31] + text
        value >>= 5
    return text


def _words(query: str) -> list[str]:
    return [w for w in re.sub(r'[()"]', " ", query).lower().split() if ":" not in w and w != "or"]


def _mentions(text: str, query: str) -> bool:
    """Every word of an OR-less query, or any of an OR query, appears in ``text``."""
    words = _words(query)
    text = text.lower()
    if " or " in query.lower():
        return any(w in text for w in words)
    return all(w in text for w in words)


@dataclass
class PublicApis:
    server: LocalServer
    t0: int = 0  # when the first round was posted
    expected: list[Expected] = field(default_factory=list)
    hn_hits: list[dict[str, Any]] = field(default_factory=list)
    reddit_things: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    skeets: list[dict[str, Any]] = field(default_factory=list)
    questions: list[dict[str, Any]] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)
    feed_items: list[FeedItem] = field(default_factory=list)
    _serial: int = 0

    def __post_init__(self) -> None:
        if not self.t0:
            self.t0 = int(datetime.now(UTC).timestamp()) - HOUR
        handlers = {
            "hn": self._hn,
            "reddit_search": self._reddit_search,
            "reddit_new": self._reddit_listing("t3"),
            "reddit_comments": self._reddit_listing("t1"),
            "mastodon": self._mastodon,
            "bluesky": self._bluesky,
            "stackexchange": self._stackexchange,
            "github": self._github,
            "appstore": self._appstore,
            "rss": self._rss,
        }
        for name, handler in handlers.items():
            self.server.route("GET", PATHS[name], handler)

    # ------------------------------------------------------------ what Earful is pointed at

    def settings(self) -> dict[str, Any]:
        """Env-style settings that send every source here, and no credentials from the shell."""
        base = self.server.base
        return {
            "EARFUL_HN_API_URL": base + "/hn/api/v1/",
            "EARFUL_REDDIT_URL": base + "/reddit/",
            "EARFUL_REDDIT_OAUTH_URL": base + "/reddit-oauth/",
            "EARFUL_BLUESKY_API_URL": base + "/bsky/xrpc/",
            "EARFUL_BLUESKY_AUTH_URL": base + "/bsky-pds/xrpc/",
            "EARFUL_STACKEXCHANGE_API_URL": base + "/se/2.3/",
            "EARFUL_GITHUB_API_URL": base + "/github/",
            "EARFUL_APPSTORE_URL": base + "/itunes/",
            **dict.fromkeys(
                (
                    "REDDIT_CLIENT_ID",
                    "REDDIT_CLIENT_SECRET",
                    "MASTODON_ACCESS_TOKEN",
                    "MASTODON_INSTANCE",
                    "BLUESKY_IDENTIFIER",
                    "BLUESKY_APP_PASSWORD",
                    "STACKEXCHANGE_KEY",
                    "GITHUB_TOKEN",
                ),
                "",
            ),
        }

    @property
    def specs(self) -> dict[str, str]:
        """Source specs by short name, written the way Earful stores them."""
        return {
            "hn": "hn",
            "reddit": "reddit",
            "subreddit": f"reddit:r/{SUBREDDIT}",
            "mastodon": f"mastodon:{self.server.base}",
            "bluesky": "bluesky",
            "stackexchange": f"stackexchange:{SE_SITE}",
            "github": "github",
            "appstore": f"appstore:{APP_ID}:us",
            "rss": f"rss:{self.server.base}{PATHS['rss']}",
        }

    def sources_option(self) -> str:
        return ",".join(self.specs.values())

    def expected_in(self, *rounds: int) -> list[Expected]:
        return [e for e in self.expected if e.round in rounds]

    def fail(self, name: str, status: int, body: str, content_type: str) -> None:
        """Make one API answer ``body`` with ``status`` from now on."""

        async def handler(_: web.Request) -> web.Response:
            return web.Response(status=status, text=body, content_type=content_type)

        self.server.route("GET", PATHS[name], handler)

    # ------------------------------------------------------------------------- publishing

    def publish(self, round_: int) -> None:
        """Post a round: two of most kinds in round 0 (plus noise), one per source after."""
        first = round_ == 0
        at = self.t0 + round_ * ROUND_SECONDS
        tag = "" if first else f" (update {round_})"
        self._hn_story(at, f"Show HN: Acme Cloud deploys in one command{tag}", round_)
        if first:
            self._hn_comment(
                at + 5, "We moved off <i>Acme Cloud</i>, support never answered a ticket.", round_
            )
        self._reddit_link(
            at + 10, "sysadmin", f"Anyone else seeing Acme Cloud outages today?{tag}", round_
        )
        if first:
            self._reddit_link(at + 15, SUBREDDIT, "Acme app keeps logging me out", round_)
            self._reddit_link(at + 16, SUBREDDIT, "Weekly off-topic thread", round_, noise=True)
        self._reddit_comment(
            at + 20, f"Same here, acme support told me to reinstall twice{tag}", round_
        )
        self._status(at + 30, f"Trying #acme for our side project, lovely onboarding{tag}", round_)
        self._skeet(at + 40, f"acme cloud billing doubled overnight, anyone else?{tag}", round_)
        self._question(at + 50, f"How do I call the Acme Cloud API from Python?{tag}", round_)
        self._issue(at + 60, f"Acme SDK crashes on start{tag}", round_)
        if first:
            self._issue(at + 65, "Add retries to the acme client", round_, pull_request=True)
        self._review(at + 70, f"Acme crashes since the update{tag}", 1, round_)
        if first:
            self._review(at + 75, "Love it", 5, round_, noise=True)
        self._feed_item(at + 80, f"Acme Cloud raises prices for the Pro plan{tag}", round_)
        if first:
            self._feed_item(at + 85, "Our favourite hiking trails", round_, noise=True)

    def _next(self) -> int:
        self._serial += 1
        return self._serial

    def _expect(
        self, name: str, external_id: str, round_: int, noise: bool = False, *, also: str = ""
    ) -> None:
        if not noise:
            extra = (self.specs[also],) if also else ()
            self.expected.append(Expected(self.specs[name], external_id, round_, extra))

    # Hacker News (Algolia HN Search API) ------------------------------------------------

    def _hn_story(self, at: int, title: str, round_: int) -> None:
        object_id = str(41_000_000 + self._next())
        self.hn_hits.append(
            {
                "created_at": iso_z(at),
                "title": title,
                "url": "https://acme.example/cloud",
                "author": "jdoe",
                "points": 42,
                "story_text": None,
                "comment_text": None,
                "num_comments": 3,
                "story_id": None,
                "story_title": None,
                "story_url": None,
                "parent_id": None,
                "created_at_i": at,
                "updated_at": iso_z(at + 60),
                "_tags": ["story", "author_jdoe", f"story_{object_id}", "show_hn"],
                "objectID": object_id,
            }
        )
        self._expect("hn", object_id, round_)

    def _hn_comment(self, at: int, html: str, round_: int) -> None:
        object_id = str(41_000_000 + self._next())
        self.hn_hits.append(
            {
                "created_at": iso_z(at),
                "title": None,
                "url": None,
                "author": "tptacek",
                "points": None,
                "story_text": None,
                "comment_text": html,
                "num_comments": None,
                "story_id": 41_000_001,
                "story_title": "Show HN: Acme Cloud deploys in one command",
                "story_url": "https://acme.example/cloud",
                "parent_id": 41_000_001,
                "created_at_i": at,
                "updated_at": iso_z(at + 60),
                "_tags": ["comment", "author_tptacek", "story_41000001"],
                "objectID": object_id,
            }
        )
        self._expect("hn", object_id, round_)

    async def _hn(self, request: web.Request) -> web.Response:
        query = request.query.get("query", "")
        kinds = set(request.query.get("tags", "(story,comment)").strip("()").split(","))
        hits = [
            h
            for h in self.hn_hits
            if kinds & set(h["_tags"])
            and _mentions(" ".join(str(h.get(k) or "") for k in ("title", "comment_text")), query)
        ]
        for bound in re.findall(r"created_at_i>=(\d+)", request.query.get("numericFilters", "")):
            hits = [h for h in hits if h["created_at_i"] >= int(bound)]
        hits.sort(key=lambda h: h["created_at_i"], reverse=True)
        per_page = int(request.query.get("hitsPerPage", "20"))
        return web.json_response(
            {
                "hits": hits[:per_page],
                "nbHits": len(hits),
                "page": 0,
                "nbPages": 1,
                "hitsPerPage": per_page,
                "exhaustiveNbHits": True,
                "query": query,
                "params": request.query_string,
                "processingTimeMS": 2,
            }
        )

    # Reddit (public JSON listings) --------------------------------------------------------

    def _reddit_link(
        self, at: int, sub: str, title: str, round_: int, *, noise: bool = False
    ) -> None:
        id36 = base36(1_900_000_000 + self._next())
        permalink = f"/r/{sub}/comments/{id36}/{title.lower().replace(' ', '_')[:40]}/"
        self.reddit_things.append(
            {
                "kind": "t3",
                "data": {
                    "subreddit": sub,
                    "selftext": "Status page says all green." if not noise else "",
                    "author_fullname": "t2_8x1k2",
                    "title": title,
                    "subreddit_name_prefixed": f"r/{sub}",
                    "name": f"t3_{id36}",
                    "score": 17,
                    "ups": 17,
                    "upvote_ratio": 0.95,
                    "is_self": True,
                    "created": float(at),
                    "created_utc": float(at),
                    "id": id36,
                    "author": "throwaway_ops",
                    "num_comments": 4,
                    "permalink": permalink,
                    "url": f"https://www.reddit.com{permalink}",
                    "over_18": False,
                },
            }
        )
        if sub == SUBREDDIT:
            self._expect("subreddit", f"t3_{id36}", round_, noise, also="reddit")
        else:
            self._expect("reddit", f"t3_{id36}", round_, noise)

    def _reddit_comment(self, at: int, body: str, round_: int) -> None:
        id36 = base36(900_000_000 + self._next())
        self.reddit_things.append(
            {
                "kind": "t1",
                "data": {
                    "subreddit": SUBREDDIT,
                    "link_title": "Acme app keeps logging me out",
                    "link_id": "t3_abc123",
                    "author": "sam_k",
                    "name": f"t1_{id36}",
                    "id": id36,
                    "parent_id": "t3_abc123",
                    "body": body,
                    "body_html": f'<div class="md"><p>{body}</p></div>',
                    "score": 3,
                    "ups": 3,
                    "created": float(at),
                    "created_utc": float(at),
                    "permalink": f"/r/{SUBREDDIT}/comments/abc123/acme_app/{id36}/",
                    "subreddit_name_prefixed": f"r/{SUBREDDIT}",
                },
            }
        )
        self._expect("subreddit", f"t1_{id36}", round_)

    @staticmethod
    def _listing(things: list[dict[str, Any]], query: Any) -> dict[str, Any]:
        """A newest-first Listing slice for limit/before/after, as Reddit answers."""
        things = sorted(things, key=lambda t: t["data"]["created_utc"], reverse=True)
        names = [t["data"]["name"] for t in things]
        limit = int(query.get("limit", "25"))
        if "before" in query:
            # An anchor that is gone gets an empty page.
            newer = things[: names.index(query["before"])] if query["before"] in names else []
            chunk = newer[-limit:]
        elif "after" in query:
            older = things[names.index(query["after"]) + 1 :] if query["after"] in names else []
            chunk = older[:limit]
        else:
            chunk = things[:limit]
        return {
            "kind": "Listing",
            "data": {
                "after": None,
                "dist": len(chunk),
                "modhash": "",
                "geo_filter": "",
                "children": chunk,
                "before": None,
            },
        }

    async def _reddit_search(self, request: web.Request) -> web.Response:
        query = request.query.get("q", "")
        found = [
            t
            for t in self.reddit_things
            if t["kind"] == "t3"
            and _mentions(f"{t['data']['title']} {t['data']['selftext']}", query)
        ]
        return web.json_response(self._listing(found, request.query))

    def _reddit_listing(self, kind: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            things = [
                t
                for t in self.reddit_things
                if t["kind"] == kind and t["data"]["subreddit"] == SUBREDDIT
            ]
            return web.json_response(self._listing(things, request.query))

        return handler

    # Mastodon (an instance's hashtag timeline) ---------------------------------------------

    def _status(self, at: int, html: str, round_: int) -> None:
        status_id = str((at * 1000 << 16) + self._next())  # a Mastodon snowflake id
        host = self.server.base.split("://", 1)[1]
        self.statuses.append(
            {
                "id": status_id,
                "created_at": iso_z(at),
                "in_reply_to_id": None,
                "sensitive": False,
                "spoiler_text": "",
                "visibility": "public",
                "language": "en",
                "uri": f"https://fosstodon.example/users/maya/statuses/{status_id}",
                "url": f"https://fosstodon.example/@maya/{status_id}",
                "replies_count": 0,
                "reblogs_count": 2,
                "favourites_count": 5,
                "content": f"<p>{html}</p>",
                "reblog": None,
                "account": {
                    "id": "109348",
                    "username": "maya",
                    "acct": "maya@fosstodon.example",
                    "display_name": "Maya",
                    "url": "https://fosstodon.example/@maya",
                    "followers_count": 310,
                    "following_count": 120,
                    "statuses_count": 2_000,
                },
                "media_attachments": [],
                "mentions": [],
                "tags": [{"name": "acme", "url": f"http://{host}/tags/acme"}],
                "card": None,
                "poll": None,
            }
        )
        self._expect("mastodon", self.statuses[-1]["uri"], round_)

    async def _mastodon(self, request: web.Request) -> web.Response:
        statuses = sorted(self.statuses, key=lambda s: int(s["id"]), reverse=True)
        if "min_id" in request.query:
            statuses = [s for s in statuses if int(s["id"]) > int(request.query["min_id"])]
        limit = int(request.query.get("limit", "20"))
        reset = (datetime.now(UTC) + timedelta(minutes=5)).isoformat(timespec="microseconds")
        return web.json_response(
            statuses[:limit],
            headers={
                "X-RateLimit-Limit": "300",
                "X-RateLimit-Remaining": "299",
                "X-RateLimit-Reset": reset,
            },
        )

    # Bluesky (app.bsky.feed.searchPosts on the public AppView) -----------------------------

    def _skeet(self, at: int, text: str, round_: int) -> None:
        did = "did:plc:4kq2vplxyzacme7y3nbt"
        uri = f"at://{did}/app.bsky.feed.post/{tid(at, self._next())}"
        self.skeets.append(
            {
                "uri": uri,
                "cid": "bafyreihq5v6dg2xnzwbacmecid" + str(self._serial),
                "author": {
                    "did": did,
                    "handle": "devon.bsky.social",
                    "displayName": "Devon",
                    "labels": [],
                    "createdAt": "2023-05-01T00:00:00.000Z",
                },
                "record": {
                    "$type": "app.bsky.feed.post",
                    "createdAt": iso_z(at),
                    "langs": ["en"],
                    "text": text,
                },
                "replyCount": 1,
                "repostCount": 0,
                "likeCount": 6,
                "quoteCount": 0,
                "indexedAt": iso_z(at + 1),
                "labels": [],
            }
        )
        self._expect("bluesky", uri, round_)

    async def _bluesky(self, request: web.Request) -> web.Response:
        query = request.query.get("q", "")
        posts = [p for p in self.skeets if _mentions(p["record"]["text"], query)]
        if "since" in request.query:
            since = datetime.fromisoformat(request.query["since"])
            posts = [p for p in posts if datetime.fromisoformat(p["indexedAt"]) >= since]
        posts.sort(key=lambda p: p["indexedAt"], reverse=True)
        limit = int(request.query.get("limit", "25"))
        return web.json_response({"posts": posts[:limit], "hitsTotal": len(posts)})

    # Stack Exchange (/2.3/search/advanced, filter=withbody) ------------------------------

    def _question(self, at: int, title: str, round_: int) -> None:
        qid = 78_000_000 + self._next()
        self.questions.append(
            {
                "tags": ["python", "acme-cloud"],
                "owner": {
                    "account_id": 1_200_345,
                    "reputation": 873,
                    "user_id": 998_877,
                    "user_type": "registered",
                    "display_name": "Ren&#233;",
                    "link": "https://stackoverflow.com/users/998877/rene",
                },
                "is_answered": False,
                "view_count": 9,
                "answer_count": 0,
                "score": 0,
                "last_activity_date": at,
                "creation_date": at,
                "question_id": qid,
                "content_license": "CC BY-SA 4.0",
                "link": f"https://stackoverflow.com/questions/{qid}/acme-cloud-auth",
                "title": title,
                "body": "<p>The <code>acme</code> client returns 401 &amp; I can't see why.</p>",
            }
        )
        self._expect("stackexchange", str(qid), round_)

    async def _stackexchange(self, request: web.Request) -> web.Response:
        query, site = request.query.get("q", ""), request.query.get("site")
        items = [
            q
            for q in self.questions
            if site == SE_SITE and _mentions(f"{q['title']} {q['body']}", query)
        ]
        if "fromdate" in request.query:
            items = [q for q in items if q["creation_date"] >= int(request.query["fromdate"])]
        items.sort(key=lambda q: q["creation_date"], reverse=request.query.get("order") != "asc")
        return web.json_response(
            {"items": items, "has_more": False, "quota_max": 300, "quota_remaining": 287}
        )

    # GitHub (REST search/issues) -----------------------------------------------------------

    def _issue(self, at: int, title: str, round_: int, *, pull_request: bool = False) -> None:
        number = 400 + self._next()
        repo = "https://api.github.com/repos/acme-corp/acme-sdk"
        kind = "pull" if pull_request else "issues"
        item: dict[str, Any] = {
            "url": f"{repo}/issues/{number}",
            "repository_url": repo,
            "html_url": f"https://github.com/acme-corp/acme-sdk/{kind}/{number}",
            "id": 2_500_000_000 + number,
            "node_id": ("PR_kwDOAcme" if pull_request else "I_kwDOAcme") + str(number),
            "number": number,
            "title": title,
            "user": {"login": "octo-dev", "id": 583_231, "type": "User"},
            "labels": [] if pull_request else [{"id": 1, "name": "bug", "color": "d73a4a"}],
            "state": "open",
            "locked": False,
            "comments": 2,
            "created_at": iso_z(at).replace(".000", ""),
            "updated_at": iso_z(at + 30).replace(".000", ""),
            "closed_at": None,
            "author_association": "NONE",
            "body": "<!-- describe the bug -->\nThe [Acme SDK](https://acme.example) fails.",
            "reactions": {"total_count": 4, "+1": 4, "-1": 0, "heart": 0},
            "score": 1.0,
        }
        if pull_request:
            item["pull_request"] = {
                "url": f"{repo}/pulls/{number}",
                "html_url": f"https://github.com/acme-corp/acme-sdk/pull/{number}",
                "merged_at": None,
            }
        self.issues.append(item)
        self._expect("github", item["node_id"], round_)

    async def _github(self, request: web.Request) -> web.Response:
        q = request.query.get("q", "")
        want_pr = "is:pull-request" in q or "is:pr" in q
        items = [
            i
            for i in self.issues
            if ("pull_request" in i) == want_pr and _mentions(f"{i['title']} {i['body']}", q)
        ]
        for bound in re.findall(r"created:>=(\S+)", q):
            since = datetime.fromisoformat(bound)
            items = [i for i in items if datetime.fromisoformat(i["created_at"]) >= since]
        items.sort(key=lambda i: i["created_at"], reverse=request.query.get("order") != "asc")
        return web.json_response(
            {"total_count": len(items), "incomplete_results": False, "items": items},
            headers={
                "X-RateLimit-Limit": "10",
                "X-RateLimit-Remaining": "9",
                "X-RateLimit-Resource": "search",
            },
        )

    # App Store (customer reviews feed, JSON) -----------------------------------------------

    def _review(
        self, at: int, title: str, rating: int, round_: int, *, noise: bool = False
    ) -> None:
        review_id = 11_000_000_000 + self._next()
        text = "Works well." if noise else "Acme logs me out every time I open it. Please fix!"
        self.reviews.append(
            {
                "author": {
                    "uri": {"label": f"https://itunes.apple.com/us/reviews/id{review_id + 7}"},
                    "name": {"label": "pat_r"},
                    "label": "",
                },
                "updated": {"label": datetime.fromtimestamp(at, CUPERTINO).isoformat()},
                "im:rating": {"label": str(rating)},
                "im:version": {"label": "7.4.1"},
                "id": {"label": str(review_id)},
                "title": {"label": title},
                "content": {"label": text, "attributes": {"type": "text"}},
                "link": {
                    "attributes": {
                        "rel": "related",
                        "href": f"https://apps.apple.com/us/app/id{APP_ID}?see-all=reviews",
                    }
                },
                "im:voteSum": {"label": "2"},
                "im:contentType": {"attributes": {"term": "Application", "label": "Application"}},
                "im:voteCount": {"label": "3"},
            }
        )
        self._expect("appstore", str(review_id), round_, noise)

    async def _appstore(self, _: web.Request) -> web.Response:
        entries = sorted(self.reviews, key=lambda r: int(r["id"]["label"]), reverse=True)
        feed = {
            "author": {
                "name": {"label": "iTunes Store"},
                "uri": {"label": "http://www.apple.com/us/itunes/"},
            },
            "entry": entries,
            "updated": {"label": datetime.now(CUPERTINO).isoformat(timespec="seconds")},
            "rights": {"label": "Copyright 2008 Apple Inc."},
            "title": {"label": "iTunes Store: Customer Reviews"},
            "icon": {"label": "http://itunes.apple.com/favicon.ico"},
            "link": [
                {
                    "attributes": {
                        "rel": "alternate",
                        "type": "text/html",
                        "href": f"https://apps.apple.com/us/app/id{APP_ID}",
                    }
                },
                {"attributes": {"rel": "self", "href": APPLE_FEED}},
            ],
            "id": {"label": APPLE_FEED},
        }
        return web.json_response({"feed": feed})

    # RSS (a company blog) ------------------------------------------------------------------

    def _feed_item(self, at: int, title: str, round_: int, *, noise: bool = False) -> None:
        guid = f"https://blog.example.com/p/{self._next()}"
        self.feed_items.append(
            FeedItem(
                guid,
                title,
                "A walk in the hills." if noise else f"{title}. Customers are not amused.",
                guid,
                published=datetime.fromtimestamp(at, UTC),
            )
        )
        self._expect("rss", guid, round_, noise)

    async def _rss(self, _: web.Request) -> web.Response:
        items = sorted(self.feed_items, key=lambda i: i.published, reverse=True)
        return web.Response(
            body=rss(items, title="Industry news"), content_type="application/rss+xml"
        )
