"""Every Slack Web API client Earful builds, all pointed at ``SLACK_API_URL`` when it is set."""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot import metrics
from bot.settings import Settings

DEFAULT_API_URL = "https://slack.com/api/"


class CountedRetries(AsyncRetryHandler):
    """One of slack_sdk's retry handlers, counting each retry it decides on in /metrics."""

    def __init__(self, handler: AsyncRetryHandler, *, reason: str) -> None:
        super().__init__(handler.max_retry_count, handler.interval_calculator)
        self.handler = handler
        self.reason = reason

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return await self.handler.can_retry_async(
            state=state, request=request, response=response, error=error
        )

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        metrics.slack_retry(url=request.url, reason=self.reason)
        await self.handler.prepare_for_next_attempt_async(
            state=state, request=request, response=response, error=error
        )


def connection_retries(count: int) -> AsyncRetryHandler:
    return CountedRetries(AsyncConnectionErrorRetryHandler(count), reason="connection")


def rate_limit_retries(count: int) -> AsyncRetryHandler:
    return CountedRetries(AsyncRateLimitErrorRetryHandler(count), reason="rate_limited")


def server_error_retries(count: int) -> AsyncRetryHandler:
    return CountedRetries(AsyncServerErrorRetryHandler(count), reason="server_error")


class MeteredWebClient(AsyncWebClient):
    """Counts the calls Slack refused (after any retries) by method and error code."""

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        try:
            return await super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            metrics.slack_api_error(method=api_method, error=exc.response.get("error"))
            raise


def build_client(settings: Settings) -> AsyncWebClient:
    """For calls that are safe to repeat: updates, reads, ephemeral notes, views."""
    return MeteredWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url or DEFAULT_API_URL,
        timeout=settings.slack_timeout_seconds,
        retry_handlers=[connection_retries(2), rate_limit_retries(2), server_error_retries(2)],
    )


def build_posting_client(settings: Settings, *, retry_rate_limits: bool = True) -> AsyncWebClient:
    """For ``chat.postMessage`` of alerts, which must never post twice.

    A 429 means Slack did nothing, so retrying it here is safe. After a 5xx or a dropped
    connection Slack may already have posted; the outbox retries those itself, after looking
    in the channel for the message it may have left. The outbox handles 429s itself too
    (``retry_rate_limits=False``): it pauses only that channel instead of waiting in the call.
    """
    return MeteredWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url or DEFAULT_API_URL,
        timeout=settings.slack_timeout_seconds,
        retry_handlers=[rate_limit_retries(2)] if retry_rate_limits else [],
    )
