"""Refusing malformed requests at /slack/events before Bolt parses them.

Bolt parses a request's body *before* it verifies the signature, and its parser raises on
anything Slack would never send (broken JSON, bytes that are not UTF-8, a timestamp that is
not a number, a ``payload`` of 100,000 nested arrays). Raised there, the error becomes a 500
for an unauthenticated caller, and a body nested deeply enough could exhaust the stack of
whatever walks it later. This aiohttp middleware answers such requests with a clean 4xx
instead: it reads the body (aiohttp caches it for Bolt) and lets Bolt's own parser try it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from slack_bolt.request.async_request import AsyncBoltRequest

from watchers.http import nested_deeper_than

log = logging.getLogger(__name__)

SLACK_PATH = "/slack/events"
# Slack's own payloads nest a dozen levels at most (rich text inside blocks inside a view).
MAX_JSON_DEPTH = 64
_CONTENT_TYPES = frozenset({"application/x-www-form-urlencoded", "application/json"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _refuse(status: int, error: str) -> web.Response:
    # A fixed message: nothing of the request is echoed back.
    return web.json_response({"ok": False, "error": error}, status=status)


# Where the guard leaves the request it parsed, for the handler: Bolt need not parse it again.
PARSED = web.RequestKey("earful_bolt_request", AsyncBoltRequest)


def parse_body(request: web.Request, text: str) -> AsyncBoltRequest | str:
    """The request as Bolt reads it, or what stops Bolt from reading ``text``.

    Bolt builds its request (JSON, the form's ``payload``, the context: team, user,
    ``authorizations``…) while the handler runs; whatever it cannot build there must be
    refused here. Parsed exactly as Bolt's aiohttp adapter does, and handed to the handler,
    so the two can never disagree.
    """
    try:
        parsed = AsyncBoltRequest(
            body=text,
            query=request.query_string,
            headers=request.headers,  # type: ignore[arg-type]
        )
    except RecursionError:
        return "payload nested too deeply"
    except ValueError:  # json.JSONDecodeError included
        return "malformed payload"
    except (AttributeError, KeyError, IndexError, TypeError):
        # JSON, but not shaped like anything Slack sends (a list, a null where an object is).
        return "payload is not shaped like a Slack request"
    if not isinstance(parsed.body, dict):
        return "payload is not a JSON object"
    if nested_deeper_than(parsed.body, MAX_JSON_DEPTH):
        return "payload nested too deeply"
    return parsed


async def _refusal(request: web.Request) -> web.Response | None:
    if request.content_type not in _CONTENT_TYPES:
        return _refuse(415, "unsupported content type")
    timestamp = request.headers.get("X-Slack-Request-Timestamp")
    if timestamp is not None and not (timestamp.isascii() and timestamp.isdigit()):
        # Bolt's verifier would raise on int(timestamp); it is unsigned nonsense either way.
        return _refuse(401, "invalid request")
    try:
        # aiohttp stops reading at the application's client_max_size.
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _refuse(413, "request too large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _refuse(400, "body is not UTF-8")
    parsed = parse_body(request, text)
    if isinstance(parsed, str):
        return _refuse(400, parsed)
    request[PARSED] = parsed
    return None


@web.middleware
async def guard_slack_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp middleware: a clean 4xx for requests to Slack's path that Bolt cannot parse."""
    if request.method != "POST" or request.path != SLACK_PATH:
        return await handler(request)
    refusal = await _refusal(request)
    if refusal is not None:
        return refusal
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        # Bolt's listener matching indexes payloads as Slack shapes them ("actions": [{…}]);
        # a signed payload shaped otherwise raises there, before any listener or error
        # handler of ours runs. Logged with its traceback, answered as the bad request it is.
        log.exception("could not handle a Slack request; refused it")
        return _refuse(400, "request could not be handled")
