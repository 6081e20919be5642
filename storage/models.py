"""The tables. Uniqueness lives in constraints, never in check-then-insert code."""

from __future__ import annotations

from datetime import date, datetime
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
    ANSWERED = "answered"  # someone replied to the post; still open until resolved
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"
    # Another mention of the same story: kept, counted on its lead's card, never queued.
    MERGED = "merged"
    # Matched a mute rule at ingest: stored (with a "muted by rule #n" event), never alerted
    # or queued.
    MUTED = "muted"


OPEN_STATES = frozenset(
    {MentionState.NEW, MentionState.CLAIMED, MentionState.ANSWERED, MentionState.ESCALATED}
)


class DismissReason(StrEnum):
    """Why a mention was dismissed; stored on its dismiss event."""

    NOISE = "noise"
    DUPLICATE = "duplicate"
    NOT_OURS = "not_ours"
    SPAM = "spam"

    @property
    def label(self) -> str:
        """How people say it: "not ours"."""
        return self.value.replace("_", " ")


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
    # Set while a poller has it (storage/watches.claim_due_sources); a new leader clears every
    # lease, since whoever held one is gone, so a poll cut short by a crash is retried at once.
    leased_until: datetime | None = _ts()
    posts_seen: int = 0
    mentions_found: int = 0


class Mention(SQLModel, table=True):
    """A post that matched a watch, with its scores, department and workflow state."""

    __tablename__ = "mention"
    __table_args__ = (
        UniqueConstraint("origin", "external_id", name="uq_mention_origin_external_id"),
        Index("ix_mention_department_state", "department", "state"),
        # The digest (storage/digest_data.py). Its grouped scans of a period read only this
        # index, never the rows (bench/digest.py: a week of 1M mentions in well under 1 s).
        Index(
            "ix_mention_digest",
            "found_at",
            "state",
            "department",
            "primary_intent",
            "source",
            "sentiment_label",
            "sentiment_compound",
            "watch_name",
            "watch_kind",
        ),
        Index("ix_mention_claimed_at", "claimed_at", "state", "department", "found_at"),
        Index("ix_mention_resolved_at", "resolved_at", "state", "department", "found_at"),
        # Short lists (open escalations, SLA breaches, the top P1/P2 of a period) without
        # reading the period's other mentions.
        Index("ix_mention_state_priority_found_at", "state", "priority", "found_at"),
        Index("ix_mention_priority_found_at", "priority", "found_at"),
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
    # For the digest's aggregates: the first (strongest) of ``intents``, and when the mention
    # was last claimed and last resolved (set by bot/workflow.py).
    primary_intent: str | None = Field(default=None, max_length=24)
    claimed_at: datetime | None = _ts()
    resolved_at: datetime | None = _ts()


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
    # The mention whose card stands for the whole story; unique, so one story has one cluster.
    lead_mention_id: int | None = Field(default=None, index=True, unique=True)
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
    period: str = Field(max_length=8)  # "hour" | "day" (UTC)
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
    reason: str | None = Field(default=None, max_length=16)  # a DismissReason, on dismissals
    created_at: datetime = _created()


class Route(SQLModel, table=True):
    """Which Slack channel a department's alerts go to."""

    __tablename__ = "route"

    department: str = Field(primary_key=True, max_length=20)
    channel_id: str = Field(max_length=32)
    updated_by: str | None = Field(default=None, max_length=32)
    updated_at: datetime = _created()


class DepartmentLead(SQLModel, table=True):
    """Who leads a department: besides the claimer and admins, who may close its mentions."""

    __tablename__ = "department_lead"

    department: str = Field(primary_key=True, max_length=20)
    user_id: str = Field(max_length=32)
    updated_by: str | None = Field(default=None, max_length=32)
    updated_at: datetime = _created()


class OutboxKind(StrEnum):
    ALERT = "alert"  # post a mention's card to its department's channel
    CARD_UPDATE = "card_update"  # re-render a mention's current card in place
    THREAD_REPLY = "thread_reply"  # a short note in the alert's thread
    RETIRE_CARD = "retire_card"  # replace an old card (after a reroute) with a pointer
    CRISIS = "crisis"  # a spike: one alert to PR and exec channels
    THREAD_NOTE = "thread_note"  # a given text in a mention's alert thread (SLA pings)
    DIRECT_MESSAGE = "direct_message"  # a given text to one person (pings, reminders)
    ROUTE_POST = "route_post"  # a given text to a department's channel (SLA escalations)
    # A burst of low-priority alerts grouped into one summary (see bot/delivery.py):
    GROUP_SUMMARY = "group_summary"  # post the summary alert to the department's channel
    GROUP_UPDATE = "group_update"  # re-render the summary's counts after more joined it
    GROUP_LINES = "group_lines"  # one thread reply under the summary listing some members


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


class AlertGroup(SQLModel, table=True):
    """A summary alert standing for a burst of low-priority mentions of one department."""

    __tablename__ = "alert_group"
    __table_args__ = (Index("ix_alert_group_department_updated_at", "department", "updated_at"),)

    id: int | None = Field(default=None, primary_key=True)
    department: str = Field(max_length=20)
    channel: str | None = Field(default=None, max_length=32)  # set once the summary is posted
    ts: str | None = Field(default=None, max_length=32)
    size: int = 0
    created_at: datetime = _created()
    updated_at: datetime = _created()  # when mentions last joined


class AlertGroupMember(SQLModel, table=True):
    """A mention alerted as a line of a summary instead of its own card; unique per mention,
    so no mention is ever listed in two summaries."""

    __tablename__ = "alert_group_member"

    id: int | None = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="alert_group.id", ondelete="CASCADE", index=True)
    mention_id: int = Field(foreign_key="mention.id", ondelete="CASCADE", unique=True)
    added_at: datetime = _created()


class SlaPolicy(SQLModel, table=True):
    """An admin's edit to the SLA table, for one department (or "*" for all) and priority.

    A None step inherits (from "*", then the built-in defaults); 0 turns that step off.
    """

    __tablename__ = "sla_policy"
    __table_args__ = (
        UniqueConstraint("department", "priority", name="uq_sla_policy_department_priority"),
    )

    id: int | None = Field(default=None, primary_key=True)
    department: str = Field(max_length=20)
    priority: str = Field(max_length=2)
    ping_seconds: int | None = None
    escalate_seconds: int | None = None
    remind_seconds: int | None = None
    updated_by: str | None = Field(default=None, max_length=32)
    updated_at: datetime = _created()


class OnCallShift(SQLModel, table=True):
    """One person's on-call hours for a department, in their own time zone (follow the sun)."""

    __tablename__ = "oncall_shift"
    __table_args__ = (
        UniqueConstraint("department", "user_id", name="uq_oncall_shift_department_user"),
    )

    id: int | None = Field(default=None, primary_key=True)
    department: str = Field(max_length=20)
    user_id: str = Field(max_length=32)
    # Local wall-clock minutes after midnight; end <= start is a shift past midnight.
    start_minute: int
    end_minute: int
    tz: str = Field(max_length=64)  # an IANA zone name
    days: int  # bit 0 = Monday … bit 6 = Sunday: the days a shift starts on
    position: int = 0
    updated_by: str | None = Field(default=None, max_length=32)
    updated_at: datetime = _created()


class SlaPhase(SQLModel, table=True):
    """Which SLA phase a mention is in (unclaimed, claimed, closed) as last seen by the timers.

    ``seq`` grows with every new phase, so timers of an earlier phase (a reopened mention's
    first life, a claim that was released) can never be mistaken for the current one.
    """

    __tablename__ = "sla_phase"

    mention_id: int = Field(primary_key=True, foreign_key="mention.id", ondelete="CASCADE")
    phase: str = Field(max_length=10)
    department: str = Field(max_length=20)
    priority: str = Field(max_length=2)
    seq: int = 1
    started_at: datetime = _created()
    seen_updated_at: datetime = _created()  # the mention's updated_at when last synced


class SlaTimer(SQLModel, table=True):
    """One step of an SLA (ping, escalate, remind) due at a time; fires at most once."""

    __tablename__ = "sla_timer"
    __table_args__ = (
        UniqueConstraint("mention_id", "kind", "seq", "level", name="uq_sla_timer_step"),
        Index("ix_sla_timer_pending", "done_at", "due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    mention_id: int = Field(foreign_key="mention.id", ondelete="CASCADE", index=True)
    kind: str = Field(max_length=10)  # "ping" | "escalate" | "remind"
    seq: int  # the SlaPhase.seq this timer belongs to
    level: int = 1  # the n-th reminder of a claim; 1 for ping and escalate
    due_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    # A firer holds a timer until then; one that crashed mid-way lets another retry after it.
    lease_until: datetime | None = _ts()
    done_at: datetime | None = _ts()
    outcome: str | None = Field(default=None, max_length=10)  # "fired" | "cancelled"
    created_at: datetime = _created()


class MuteRule(SQLModel, table=True):
    """Posts matching this are stored but never alerted: an author, a domain or a phrase.

    Removed rules are kept (``removed_at``) so that "muted by rule #n" on old mentions still
    points at what muted them.
    """

    __tablename__ = "mute_rule"
    __table_args__ = (Index("ix_mute_rule_active", "removed_at", "expires_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=8)  # "author" | "domain" | "phrase"
    value: str = Field(sa_column=Column(Text, nullable=False))  # normalised, lower case
    source: str | None = Field(default=None, sa_column=Column(Text))  # a spec or a bare type
    department: str | None = Field(default=None, max_length=20)  # None: every department
    created_by: str = Field(max_length=32)
    created_at: datetime = _created()
    expires_at: datetime | None = _ts()
    removed_at: datetime | None = _ts()
    removed_by: str | None = Field(default=None, max_length=32)
    hits: int = 0
    last_hit_at: datetime | None = _ts()


class SavedAnswer(SQLModel, table=True):
    """A reply kept for reuse (the knowledge base), offered in the answer modal for like posts."""

    __tablename__ = "saved_answer"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=150)
    body: str = Field(sa_column=Column(Text, nullable=False))
    department: str | None = Field(default=None, max_length=20)
    intents: list[str] = _json_list()  # Intent values of the mention it was written for
    watch_name: str | None = Field(default=None, max_length=40)
    # Title, body and intents as normalised words (bot/answers.py): what search matches on.
    terms: str = Field(default="", sa_column=Column(Text, nullable=False))
    author: str = Field(max_length=32)
    created_at: datetime = _created()
    use_count: int = 0
    last_used_at: datetime | None = _ts()
    mention_id: int | None = Field(default=None, foreign_key="mention.id", ondelete="SET NULL")


class MentionAnswer(SQLModel, table=True):
    """What someone wrote when answering a mention: the public reply draft and an internal note."""

    __tablename__ = "mention_answer"

    id: int | None = Field(default=None, primary_key=True)
    mention_id: int = Field(foreign_key="mention.id", ondelete="CASCADE", index=True)
    # The "answer" event it explains; unique, so one answer is never recorded twice.
    event_id: int | None = Field(
        default=None, foreign_key="event.id", ondelete="SET NULL", index=True, unique=True
    )
    author: str = Field(max_length=32)
    draft: str | None = Field(default=None, sa_column=Column(Text))
    note: str | None = Field(default=None, sa_column=Column(Text))
    saved_answer_id: int | None = Field(
        default=None, foreign_key="saved_answer.id", ondelete="SET NULL"
    )
    used_answer_id: int | None = Field(  # the saved answer the draft started from
        default=None, foreign_key="saved_answer.id", ondelete="SET NULL"
    )
    created_at: datetime = _created()


class DigestSubscription(SQLModel, table=True):
    """Who gets the executive digest: a person's DM or a channel, at a local time each day.

    ``last_sent_on`` is the subscriber's local date of the last digest done (sent, or passed
    before the subscription existed), so a restart or a daylight-saving change never sends a
    day twice. ``claimed_on``/``lease_until`` hold a send in progress: one process at a time.
    """

    __tablename__ = "digest_subscription"
    __table_args__ = (UniqueConstraint("target", name="uq_digest_subscription_target"),)

    id: int | None = Field(default=None, primary_key=True)
    target: str = Field(max_length=32)  # a user id (a DM) or a channel id
    is_channel: bool = False
    send_minute: int  # local minutes after midnight
    tz: str = Field(max_length=64)  # an IANA zone name
    departments: list[str] = _json_list()  # empty: every department
    created_by: str = Field(max_length=32)
    created_at: datetime = _created()
    updated_at: datetime = _created()
    last_sent_on: date | None = None
    last_sent_at: datetime | None = _ts()
    claimed_on: date | None = None
    lease_until: datetime | None = _ts()
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text))


class SeenSlackRequest(SQLModel, table=True):
    """A signed Slack request already handled, kept while its signature could still be valid.

    Replicas share this table so that a request captured and replayed to another replica within
    Slack's five-minute window is refused there too. The signature is the key: it is an HMAC
    of the timestamp and the body, so no two genuine requests share one.
    """

    __tablename__ = "seen_slack_request"

    signature: str = Field(primary_key=True, max_length=80)
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))


class JobRun(SQLModel, table=True):
    """One finished run of a scheduled job: which replica ran it, when, and how it ended.

    Only the elected leader runs jobs (bot/leader.py); these rows are how a new leader picks up
    each job's rhythm where the old one stopped, and what ``/earful status`` shows.
    """

    __tablename__ = "job_run"
    __table_args__ = (Index("ix_job_run_job_started_at", "job", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)
    job: str = Field(max_length=40)
    replica: str = Field(max_length=64)
    started_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    finished_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    error: str | None = Field(default=None, sa_column=Column(Text))
