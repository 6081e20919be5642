"""Every Slack Web API client Earful builds, all pointed at ``SLACK_API_URL`` when it is set."""

from __future__ import annotations

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings

DEFAULT_API_URL = "https://slack.com/api/"


def build_client(settings: Settings) -> AsyncWebClient:
    """For calls that are safe to repeat: updates, reads, ephemeral notes, views."""
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url or DEFAULT_API_URL,
        timeout=15,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=2),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def build_posting_client(settings: Settings) -> AsyncWebClient:
    """For ``chat.postMessage`` of alerts, which must never post twice.

    A 429 means Slack did nothing, so retrying it here is safe. After a 5xx or a dropped
    connection Slack may already have posted; the outbox retries those itself, after looking
    in the channel for the message it may have left.
    """
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url or DEFAULT_API_URL,
        timeout=15,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )
