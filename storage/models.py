"""The tables. Uniqueness lives in constraints, never in check-then-insert code."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow


def _ts(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(
        default=None,
        sa_column=Column(UTCDateTime(), nullable=nullable, index=index),
    )


def _created() -> Any:
    return Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


def _json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class MentionState(StrEnum):
    NEW = "new"
    CLAIMED = "claimed"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"


OPEN_STATES = frozenset({MentionState.NEW, MentionState.CLAIMED, MentionState.ESCALATED})


class Watch(SQLModel, table=True):
    __tablename__ = "watch"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=40, unique=True)
    query: str = Field(sa_column=Column(Text, nullable=False))
    kind: str = Field(max_length=20)
    department: str | None = Field(default=None, max_length=20)
    sources: list[str] = _json_list()
    # A query of its own: posts matching it are never alerted for this watch.
    exclude: str | None = Field(default=None, sa_column=Column(Text))
    interval_seconds: int
    paused: bool = False
    created_by: str | None = Field(default=None, max_length=32)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class SourceState(SQLModel, table=True):
    """Poll state of one source of one watch: what to ask next time, and how healthy it is."""

    __tablename__ = "source_state"
    __table_args__ = (UniqueConstraint("watch_id", "source", name="uq_source_state_watch_source"),)

    id: int | None = Field(default=None, primary_key=True)
    watch_id: int = Field(foreign_key="watch.id", ondelete="CASCADE", index=True)
    source: str = Field(sa_column=Column(Text, nullable=False))
    etag: str | None = Field(default=None, sa_column=Column(Text))
    last_modified: str | None = Field(default=None, max_length=100)
    cursor: str | None = Field(default=None, sa_column=Column(Text))
    last_poll_at: datetime | None = _ts()
    last_success_at: datetime | None = _ts()
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    consecutive_failures: int = 0
    next_poll_at: datetime | None = _ts(index=True)
    posts_seen: int = 0
    mentions_found: int = 0


class Mention(SQLModel, table=True):
    """A post that matched a watch, with its scores, department and workflow state."""

    __tablename__ = "mention"
    __table_args__ = (
        UniqueConstraint("origin", "external_id", name="uq_mention_origin_external_id"),
        Index("ix_mention_department_state", "department", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    watch_id: int | None = Field(default=None, foreign_key="watch.id", ondelete="SET NULL")
    watch_name: str = Field(max_length=40)
    watch_kind: str = Field(max_length=20)
    watches: list[str] = _json_list()  # every watch the post matched; watch_name is the primary
    source: str = Field(sa_column=Column(Text, nullable=False))
    # Where external ids are unique: "reddit" for both reddit and reddit:r/x, so one post
    # returned by two sources of a watch is one mention.
    origin: str = Field(sa_column=Column(Text, nullable=False))
    external_id: str = Field(sa_column=Column(Text, nullable=False))
    url: str | None = Field(default=None, sa_column=Column(Text))
    author: str | None = Field(default=None, sa_column=Column(Text))
    author_reach: int | None = None
    title: str | None = Field(default=None, sa_column=Column(Text))
    text: str = Field(sa_column=Column(Text, nullable=False))
    language: str | None = Field(default=None, max_length=16)
    published_at: datetime | None = _ts()
    found_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=True)
    )
    raw: str | None = Field(default=None, sa_column=Column(Text))
    matched_terms: list[str] = _json_list()
    sentiment_compound: float = 0.0
    sentiment_label: str = Field(default="neutral", max_length=10)
    intents: list[dict[str, Any]] = _json_list()  # [{"intent": ..., "triggers": [...]}]
    department: str = Field(max_length=20)
    cc: list[str] = _json_list()
    route_rule: str = Field(default="", sa_column=Column(Text, nullable=False))
    priority: str = Field(max_length=2)
    priority_reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    state: str = Field(default=MentionState.NEW, max_length=12)
    owner: str | None = Field(default=None, max_length=32)
    escalation_level: int = 0
    channel: str | None = Field(default=None, max_length=32)
    ts: str | None = Field(default=None, max_length=32)
    updated_at: datetime = _created()
    # Dedup: the URL without tracking parameters, and the story (cluster) this mention is in.
    canonical_url: str | None = Field(default=None, sa_column=Column(Text, index=True))
    cluster_id: int | None = Field(default=None, foreign_key="cluster.id", index=True)
    minhash: bytes | None = Field(default=None, sa_column=Column(LargeBinary))


class FetchedPost(SQLModel, table=True):
    """Every post a source returned recently, matched or not: what ``watch test`` searches."""

    __tablename__ = "post"
    __table_args__ = (UniqueConstraint("origin", "external_id", name="uq_post_origin_external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(sa_column=Column(Text, nullable=False))
    origin: str = Field(sa_column=Column(Text, nullable=False))
    external_id: str = Field(sa_column=Column(Text, nullable=False))
    url: str | None = Field(default=None, sa_column=Column(Text))
    author: str | None = Field(default=None, sa_column=Column(Text))
    author_reach: int | None = None
    title: str | None = Field(default=None, sa_column=Column(Text))
    text: str = Field(sa_column=Column(Text, nullable=False))
    language: str | None = Field(default=None, max_length=16)
    published_at: datetime | None = _ts()
    fetched_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=True)
    )


class Cluster(SQLModel, table=True):
    """One story, however many sources retell it: one alert, with "also seen on" and a count."""

    __tablename__ = "cluster"

    id: int | None = Field(default=None, primary_key=True)
    # The mention whose card stands for the whole story.
    lead_mention_id: int | None = Field(default=None, index=True)
    size: int = 1
    sources: list[str] = _json_list()  # distinct source specs, in order of first sighting
    first_seen_at: datetime = _created()
    last_seen_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=True)
    )
    peak_reach: int | None = None  # the largest author reach seen in the story
    traction_notified_size: int = 1  # size when the last "spreading" note was posted


class Spike(SQLModel, table=True):
    """A watch's mention volume (or negative share) far above its own baseline."""

    __tablename__ = "spike"
    __table_args__ = (Index("ix_spike_watch_kind_open", "watch_name", "kind", "ended_at"),)

    id: int | None = Field(default=None, primary_key=True)
    watch_name: str = Field(max_length=40)
    kind: str = Field(max_length=16)  # "volume" | "negative"
    started_at: datetime = _created()
    ended_at: datetime | None = _ts()
    observed: float
    expected: float
    p_value: float
    example_mention_ids: list[int] = _json_list()
    cluster_id: int | None = None
    alerted: bool = False


class ShareOfVoice(SQLModel, table=True):
    """Per period and watch: volume and sentiment, kept for the digest."""

    __tablename__ = "share_of_voice"
    __table_args__ = (
        UniqueConstraint("period", "period_start", "watch_name", name="uq_sov_period_watch"),
    )

    id: int | None = Field(default=None, primary_key=True)
    period: str = Field(max_length=8)  # "day" | "week"
    period_start: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    watch_name: str = Field(max_length=40)
    watch_kind: str = Field(max_length=20)
    volume: int = 0
    positive: int = 0
    neutral: int = 0
    negative: int = 0
    mean_compound: float = 0.0


class RoutingRule(SQLModel, table=True):
    """An edit to the default routing table: (intent, watch kind) → department (+ cc)."""

    __tablename__ = "routing_rule"
    __table_args__ = (UniqueConstraint("intent", "kind", name="uq_routing_rule_intent_kind"),)

    id: int | None = Field(default=None, primary_key=True)
    intent: str = Field(max_length=24)  # an Intent value, or "*" for "no intent"
    kind: str = Field(max_length=20)  # a WatchKind value
    department: str = Field(max_length=20)
    cc: list[str] = _json_list()
    updated_by: str | None = Field(default=None, max_length=32)
    updated_at: datetime = _created()


class Event(SQLModel, table=True):
    """One change of a mention's state: the audit trail."""

    __tablename__ = "event"

    id: int | None = Field(default=None, primary_key=True)
    mention_id: int = Field(foreign_key="mention.id", ondelete="CASCADE", index=True)
    actor: str | None = Field(default=None, max_length=32)  # Slack user id; None = Earful itself
    action: str = Field(max_length=20)
    from_state: str | None = Field(default=None, max_length=12)
    to_state: str | None = Field(default=None, max_length=12)
    note: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = _created()


class Route(SQLModel, table=True):
    """Which Slack channel a department's alerts go to."""

    __tablename__ = "route"

    department: str = Field(primary_key=True, max_length=20)
    channel_id: str = Field(max_length=32)
    updated_by: str | None = Field(default=None, max_length=32)
    updated_at: datetime = _created()


class OutboxKind(StrEnum):
    ALERT = "alert"  # post a mention's card to its department's channel
    CARD_UPDATE = "card_update"  # re-render a mention's current card in place
    THREAD_REPLY = "thread_reply"  # a short note in the alert's thread
    RETIRE_CARD = "retire_card"  # replace an old card (after a reroute) with a pointer
    CRISIS = "crisis"  # a spike: one alert to PR and exec channels


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    DEAD = "dead"


class OutboxItem(SQLModel, table=True):
    """A Slack post or update that must happen; written in the same transaction as its cause."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next_attempt", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)
    mention_id: int | None = Field(
        default=None, foreign_key="mention.id", ondelete="CASCADE", index=True
    )
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default=OutboxStatus.PENDING, max_length=10)
    attempts: int = 0
    next_attempt_at: datetime = _created()
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = _created()
    done_at: datetime | None = _ts()
