"""Oversized, deeply nested and malformed requests at /slack/events: a clean 4xx, never a 500."""

from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

import aiohttp
import pytest

from bot.server import MAX_REQUEST_BYTES
from tests.fakes.slack_requests import FORM, JSON, SlackRequestSigner, block_action, slash_command
from tests.security.conftest import SlackFacing


async def post(
    http: aiohttp.ClientSession,
    url: str,
    body: bytes,
    content_type: str,
    signer: SlackRequestSigner,
) -> tuple[int, str]:
    headers = {"Content-Type": content_type, **signer.headers(body)}
    async with http.post(url, data=body, headers=headers) as response:
        return response.status, await response.text()


def nested_payload(depth: int) -> bytes:
    return urlencode({"payload": "[" * depth + "]" * depth}).encode()


def nested_object_payload(depth: int) -> bytes:
    payload = '{"type": "block_actions", "x": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
    return urlencode({"payload": payload}).encode()


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The guard runs before any storage: one engine is enough."""
    return sqlite_url


CASES = {
    # name: (body, content type, expected status)
    "100k nested arrays in payload": (nested_payload(100_000), FORM, 400),
    "nested objects under Python's recursion limit": (nested_object_payload(500), FORM, 400),
    "malformed JSON payload": (urlencode({"payload": '{"type": "block_'}).encode(), FORM, 400),
    "payload that is a list": (urlencode({"payload": "[1, 2]"}).encode(), FORM, 400),
    "payload that is a string": (urlencode({"payload": '"hi"'}).encode(), FORM, 400),
    "JSON body that is not an object": (b"[1, 2, 3]", JSON, 400),
    "malformed JSON body": (b'{"type": "event_callback", ', JSON, 400),
    "deep JSON body": (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", JSON, 400),
    "form body starting with a brace": (b"{not json", FORM, 400),
    "not UTF-8": (b"command=%2Fearful&text=\xff\xfe\xfa", FORM, 400),
    "latin-1 payload": ('payload={"type": "é"}'.encode("latin-1"), FORM, 400),
    "plain text": (b"hello", "text/plain", 415),
    "multipart": (b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x", 415),
    "XML": (b"<payload/>", "application/xml", 415),
    "larger than the limit": (b"text=" + b"a" * (MAX_REQUEST_BYTES + 1), FORM, 413),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_hostile_bodies_get_a_clean_refusal(
    case: str,
    instance: SlackFacing,
    http: aiohttp.ClientSession,
    slack_signer: SlackRequestSigner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    body, content_type, expected = CASES[case]
    # Validly signed: a leaked signing secret must not turn these into crashes either.
    status, text = await post(http, instance.url, body, content_type, slack_signer)
    assert status == expected, text
    assert json.loads(text)["ok"] is False
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_unsigned_garbage_is_refused_the_same_way(
    instance: SlackFacing, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        instance.url, data=nested_payload(100_000), headers={"Content-Type": FORM}
    ) as response:
        assert response.status == 400


async def test_a_giant_command_text_gets_a_clear_answer(
    instance: SlackFacing, http: aiohttp.ClientSession, slack_signer: SlackRequestSigner
) -> None:
    body = slash_command("watch add " + "acme " * 150_000)
    assert len(body) < MAX_REQUEST_BYTES
    status, text = await post(http, instance.url, body, FORM, slack_signer)
    assert status == 200
    answer = json.loads(text)
    assert answer["response_type"] == "ephemeral"
    assert "too long" in answer["text"]
    assert len(text) < 10_000  # the answer does not echo the 750 kB back


async def test_well_formed_requests_still_pass(
    instance: SlackFacing, http: aiohttp.ClientSession, slack_signer: SlackRequestSigner
) -> None:
    status, _ = await post(http, instance.url, slash_command("help"), FORM, slack_signer)
    assert status == 200
    status, _ = await post(
        http, instance.url, block_action("no-such-action", "1"), FORM, slack_signer
    )
    assert status in (200, 404)  # Bolt's answer for an action nobody listens to
