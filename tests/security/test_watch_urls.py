"""``/earful watch add … sources=rss:<url>`` with a URL Earful must not fetch: a clear no."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.fakes.slack_requests import FORM, SlackRequestSigner, post_signed, slash_command
from tests.security.conftest import StartInstance
from tests.security.slack_markup import inspect


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url


REFUSED = {
    "http://127.0.0.1:8080/feed": "loopback",
    "http://[::ffff:127.0.0.1]/feed": "loopback",
    "http://0177.0.0.1/feed": "usual dotted form",
    "http://2130706433/feed": "usual dotted form",
    "http://0x7f.1/feed": "usual dotted form",
    "http://169.254.169.254/latest/meta-data/": "cloud metadata",
    "http://[fd00:ec2::254]/": "cloud metadata",
    "http://10.0.0.5/feed": "private",
    "http://100.64.1.1/feed": "carrier-grade NAT",
    "http://localhost./feed": "localhost",
    "http://good.example@127.0.0.1/feed": "user name or password",
    "file:///etc/passwd": "only http and https",
    "gopher://127.0.0.1:6379/_INFO": "only http and https",
    "ftp://example.com/feed": "only http and https",
    "data:text/xml,<rss/>": "only http and https",
    "javascript:alert(1)": "only http and https",
}


async def test_watch_add_with_a_refused_feed_url_answers_why_ephemerally(
    start_instance: StartInstance, slack_signer: SlackRequestSigner
) -> None:
    instance = await start_instance(EARFUL_FETCH_ALLOW_PRIVATE=False)
    async with aiohttp.ClientSession() as http:
        for url, reason in REFUSED.items():
            body = slash_command(f'watch add feed "acme" sources=rss:{url}', user_id="U0ALICE")
            response = await post_signed(http, instance.url, body, FORM, slack_signer)
            assert response.status == 200
            answer = json.loads(await response.text())
            assert answer["response_type"] == "ephemeral", url
            assert reason in answer["text"], (url, answer["text"])
            assert "saved" not in answer["text"]
            # The URL is echoed, but as text: nothing in it becomes a link or a mention.
            assert inspect(answer.get("blocks"), link_hosts=frozenset()) == [], answer
        listed = await post_signed(
            http, instance.url, slash_command("watch list"), FORM, slack_signer
        )
        assert "feed" not in json.loads(await listed.text())["text"]
