"""Settings from the environment (and ``.env``), validated once at start-up."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

from watchers.source_settings import SourceSettings

# Matches the placeholders in .env.example, so a copied-but-unedited file is caught early.
_PLACEHOLDER = re.compile(r"(your-|change-?me|replace-?me|placeholder|\.\.\.)", re.IGNORECASE)
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_REPLICA_ID = re.compile(r"^[A-Za-z0-9._:-]{1,48}$")


class Settings(BaseSettings):
    """Everything Earful reads from its environment. Secrets are ``SecretStr``: never logged."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    slack_bot_token: SecretStr = Field(validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr = Field(validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str | None = Field(default=None, validation_alias="SLACK_API_URL")
    database_url: str = Field(default="sqlite:///earful.db", validation_alias="DATABASE_URL")
    port: int = Field(default=3000, ge=1, le=65535, validation_alias="PORT")
    host: str = Field(default="0.0.0.0", validation_alias="EARFUL_HOST")
    admins: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(), validation_alias="EARFUL_ADMINS"
    )
    fetch_allow_private: bool = Field(default=False, validation_alias="EARFUL_FETCH_ALLOW_PRIVATE")
    fetch_timeout_seconds: float = Field(
        default=15.0, gt=0, le=300, validation_alias="EARFUL_FETCH_TIMEOUT_SECONDS"
    )
    fetch_max_bytes: int = Field(
        default=5_000_000, ge=10_000, le=100_000_000, validation_alias="EARFUL_FETCH_MAX_BYTES"
    )
    fetch_per_host_rate: float = Field(
        default=1.0, gt=0, le=1000, validation_alias="EARFUL_FETCH_PER_HOST_RATE"
    )
    # Public sources: every base URL is a setting (proxies, mirrors, tests); credentials are
    # optional and used when given.
    hn_api_url: str = Field(
        default="https://hn.algolia.com/api/v1/", validation_alias="EARFUL_HN_API_URL"
    )
    reddit_url: str = Field(default="https://www.reddit.com/", validation_alias="EARFUL_REDDIT_URL")
    reddit_oauth_url: str = Field(
        default="https://oauth.reddit.com/", validation_alias="EARFUL_REDDIT_OAUTH_URL"
    )
    reddit_client_id: str | None = Field(default=None, validation_alias="REDDIT_CLIENT_ID")
    reddit_client_secret: SecretStr | None = Field(
        default=None, validation_alias="REDDIT_CLIENT_SECRET"
    )
    mastodon_access_token: SecretStr | None = Field(
        default=None, validation_alias="MASTODON_ACCESS_TOKEN"
    )
    mastodon_instance: str | None = Field(default=None, validation_alias="MASTODON_INSTANCE")
    bluesky_api_url: str = Field(
        default="https://public.api.bsky.app/xrpc/", validation_alias="EARFUL_BLUESKY_API_URL"
    )
    bluesky_auth_url: str = Field(
        default="https://bsky.social/xrpc/", validation_alias="EARFUL_BLUESKY_AUTH_URL"
    )
    bluesky_identifier: str | None = Field(default=None, validation_alias="BLUESKY_IDENTIFIER")
    bluesky_app_password: SecretStr | None = Field(
        default=None, validation_alias="BLUESKY_APP_PASSWORD"
    )
    stackexchange_api_url: str = Field(
        default="https://api.stackexchange.com/2.3/",
        validation_alias="EARFUL_STACKEXCHANGE_API_URL",
    )
    stackexchange_key: SecretStr | None = Field(default=None, validation_alias="STACKEXCHANGE_KEY")
    github_api_url: str = Field(
        default="https://api.github.com/", validation_alias="EARFUL_GITHUB_API_URL"
    )
    github_token: SecretStr | None = Field(default=None, validation_alias="GITHUB_TOKEN")
    appstore_url: str = Field(
        default="https://itunes.apple.com/", validation_alias="EARFUL_APPSTORE_URL"
    )
    log_level: str = Field(default="INFO", validation_alias="EARFUL_LOG_LEVEL")
    log_format: Literal["text", "json"] = Field(
        default="text", validation_alias="EARFUL_LOG_FORMAT"
    )
    # /metrics shares the public port with /slack/events; set a token to keep it private.
    metrics_token: SecretStr | None = Field(default=None, validation_alias="EARFUL_METRICS_TOKEN")
    poll_tick_seconds: float = Field(
        default=5.0, gt=0, le=300, validation_alias="EARFUL_POLL_TICK_SECONDS"
    )
    min_interval_seconds: int = Field(
        default=60, ge=1, le=86_400, validation_alias="EARFUL_MIN_INTERVAL_SECONDS"
    )
    scoring_workers: int = Field(
        default=1,
        ge=0,
        le=32,
        validation_alias=AliasChoices("EARFUL_SCORING_WORKERS"),
        description="processes that score bursts of posts; 0 scores in a thread",
    )
    # Slack allows about one message a second per channel; tests make it shorter.
    slack_channel_interval_seconds: float = Field(
        default=1.0, ge=0, le=60, validation_alias="EARFUL_SLACK_CHANNEL_INTERVAL"
    )
    # How long a Slack Web API call may take before the client gives up (and the outbox
    # retries, looking first for what a late-answered post may have left).
    slack_timeout_seconds: int = Field(
        default=15, ge=1, le=120, validation_alias="EARFUL_SLACK_TIMEOUT"
    )
    # Replicas (bot/leader.py): one leader runs the jobs and the outbox, elected in PostgreSQL.
    replica_id: str | None = Field(default=None, validation_alias="EARFUL_REPLICA_ID")
    leader_retry_seconds: float = Field(
        default=5.0, gt=0, le=30, validation_alias="EARFUL_LEADER_RETRY_SECONDS"
    )
    leader_check_seconds: float = Field(
        default=5.0, gt=0, le=20, validation_alias="EARFUL_LEADER_CHECK_SECONDS"
    )
    job_intervals: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict, validation_alias="EARFUL_JOB_INTERVALS"
    )
    job_stuck_seconds: float = Field(
        default=900.0, gt=0, le=86_400, validation_alias="EARFUL_JOB_STUCK_SECONDS"
    )

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value().strip()
        if not token.startswith("xoxb-"):
            raise ValueError(
                "must be a bot token starting with xoxb- (Slack app → OAuth & Permissions)"
            )
        if _PLACEHOLDER.search(token):
            raise ValueError("still holds the placeholder from .env.example")
        return SecretStr(token)

    @field_validator("slack_signing_secret")
    @classmethod
    def _signing_secret(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value().strip()
        if len(secret) < 8:
            raise ValueError("looks too short (Slack app → Basic Information → Signing Secret)")
        if _PLACEHOLDER.search(secret):
            raise ValueError("still holds the placeholder from .env.example")
        return SecretStr(secret)

    @field_validator("slack_app_token", mode="before")
    @classmethod
    def _app_token(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        token = str(value).strip()
        if not token.startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp- (for Socket Mode)")
        if _PLACEHOLDER.search(token):
            raise ValueError("still holds the placeholder from .env.example")
        return token

    @field_validator("slack_api_url", mode="before")
    @classmethod
    def _api_url(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        url = str(value).strip()
        if not re.match(r"^https?://[^\s/]+", url):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        # slack_sdk appends the method name to the base URL as-is.
        return url if url.endswith("/") else url + "/"

    @field_validator(
        "hn_api_url",
        "reddit_url",
        "reddit_oauth_url",
        "bluesky_api_url",
        "bluesky_auth_url",
        "stackexchange_api_url",
        "github_api_url",
        "appstore_url",
        mode="before",
    )
    @classmethod
    def _base_url(cls, value: Any) -> Any:
        url = str(value).strip()
        if not re.match(r"^https?://[^\s/]+", url):
            raise ValueError("must be an http(s) base URL")
        return url if url.endswith("/") else url + "/"

    @field_validator(
        "reddit_client_id",
        "reddit_client_secret",
        "mastodon_access_token",
        "mastodon_instance",
        "bluesky_identifier",
        "bluesky_app_password",
        "stackexchange_key",
        "github_token",
        mode="before",
    )
    @classmethod
    def _optional(cls, value: Any) -> Any:
        # An empty line in .env means "not set", not "set to nothing".
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return value.strip() if isinstance(value, str) else value

    def source_settings(self) -> SourceSettings:
        def secret(value: SecretStr | None) -> str | None:
            return value.get_secret_value() if value is not None else None

        return SourceSettings(
            hn_api_url=self.hn_api_url,
            reddit_url=self.reddit_url,
            reddit_oauth_url=self.reddit_oauth_url,
            reddit_client_id=self.reddit_client_id,
            reddit_client_secret=secret(self.reddit_client_secret),
            mastodon_access_token=secret(self.mastodon_access_token),
            mastodon_instance=self.mastodon_instance,
            bluesky_api_url=self.bluesky_api_url,
            bluesky_auth_url=self.bluesky_auth_url,
            bluesky_identifier=self.bluesky_identifier,
            bluesky_app_password=secret(self.bluesky_app_password),
            stackexchange_api_url=self.stackexchange_api_url,
            stackexchange_key=secret(self.stackexchange_key),
            github_api_url=self.github_api_url,
            github_token=secret(self.github_token),
            appstore_url=self.appstore_url,
        )

    @field_validator("replica_id", mode="before")
    @classmethod
    def _replica_id(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None  # bot/leader.py names the replica after its host and process
        replica = str(value).strip()
        if not _REPLICA_ID.match(replica):
            raise ValueError("must be 1-48 letters, digits, dots, dashes, underscores or colons")
        return replica

    @field_validator("job_intervals", mode="before")
    @classmethod
    def _job_intervals(cls, value: Any) -> Any:
        from bot.jobs import JobId

        if value is None or isinstance(value, dict):
            pairs = dict(value or {})
        else:
            pairs = {}
            for part in (p for p in re.split(r"[\s,]+", str(value)) if p):
                name, _, seconds = part.partition("=")
                pairs[name] = seconds
        known = {job.value for job in JobId}
        intervals: dict[str, float] = {}
        for name, seconds in pairs.items():
            if name not in known:
                raise ValueError(f"{name!r} is not a job; the jobs are {', '.join(sorted(known))}")
            try:
                interval = float(seconds)
            except (TypeError, ValueError):
                raise ValueError(f"{name} needs a number of seconds, like {name}=60") from None
            if not 0 < interval <= 86_400:
                raise ValueError(f"{name} must run between every 0 and 86400 seconds")
            intervals[name] = interval
        return intervals

    @field_validator("admins", mode="before")
    @classmethod
    def _admins(cls, value: Any) -> Any:
        if isinstance(value, str):
            ids = [part for part in re.split(r"[\s,]+", value) if part]
        else:
            ids = list(value or [])
        bad = [user_id for user_id in ids if not _USER_ID.match(user_id)]
        if bad:
            raise ValueError(f"not Slack user IDs (like U0123ABCD): {', '.join(bad)}")
        return frozenset(ids)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        from storage.db import async_url

        try:
            async_url(value)
        except Exception as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, value: Any) -> Any:
        log_format = str(value).strip().lower()
        if log_format not in {"text", "json"}:
            raise ValueError("must be text or json")
        return log_format

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _metrics_token(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        token = str(value).strip()
        if len(token) < 16:
            raise ValueError("is too short to be a secret: use 16 characters or more")
        return token

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return level

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    def secret_values(self) -> list[str]:
        """Every secret this configuration holds, for the log filter to blot out wherever a
        library or an error message echoes one (tokens, keys, the database password)."""
        values = [
            value.get_secret_value()
            for value in vars(self).values()
            if isinstance(value, SecretStr) and value.get_secret_value()
        ]
        password = make_url(self.database_url).password
        if password:
            values.append(str(password))
        return values


class SettingsError(Exception):
    """Configuration is missing or wrong; ``problems`` names each variable and what to do."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def load_settings(**overrides: Any) -> Settings:
    """Read settings, turning pydantic's errors into one line per environment variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = _env_name(error.get("loc", ()))
            if error.get("type") == "missing":
                problems.append(f"{name} is missing")
            else:
                message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
                problems.append(f"{name} {message}")
        raise SettingsError(problems) from None


def _env_name(loc: tuple[Any, ...]) -> str:
    field = str(loc[0]) if loc else "?"
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return field.upper()
