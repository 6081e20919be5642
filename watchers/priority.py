"""How urgent a mention is, P1 (act now) to P4 (read when there is time), and why.

Rules, in order:
1. A legal risk is P1.
2. Churn risk is at least P2, whatever the tone (see ``prioritize``).
3. A complaint or bug report is P2 when strongly negative (compound ≤ -0.6), else P3.
4. A question or a buyer's intent is P3; anything else is P4.
5. A large audience (reach ≥ 10,000) or a burst (≥ 5 similar posts) raises any of these by
   one level: that is how a single angry post becomes a public incident.
"""

from __future__ import annotations

from collections.abc import Sequence

from watchers.departments import Intent, Priority
from watchers.sentiment import Sentiment

STRONGLY_NEGATIVE = -0.6
LARGE_AUDIENCE = 10_000
BURST_VELOCITY = 5

_PROBLEMS = (Intent.COMPLAINT, Intent.BUG_REPORT)
# A buyer choosing now is worth more than a question, so it names the reason first.
_NEEDS_ANSWER = (Intent.PURCHASE_INTENT, Intent.QUESTION)
_LOW = (Intent.PRESS, Intent.EMPLOYER_TALK, Intent.FEATURE_REQUEST, Intent.PRAISE)
_ORDER = (Priority.P1, Priority.P2, Priority.P3, Priority.P4)


def _label(intent: Intent) -> str:
    return intent.value.replace("_", " ")


def _score_text(compound: float) -> str:
    # A real minus sign: the reason is read on a Slack card, not parsed.
    return f"−{abs(compound):.2f}" if compound < 0 else f"{compound:.2f}"


def _raise(priority: Priority) -> Priority:
    return _ORDER[max(_ORDER.index(priority) - 1, 0)]


def prioritize(
    *,
    sentiment: Sentiment,
    intents: Sequence[Intent],
    author_reach: int | None = None,
    velocity: int = 1,
) -> tuple[Priority, str]:
    """The priority of a mention and a short reason for the Slack card.

    ``velocity`` is how many similar posts arrived in the current burst, this one included.
    """
    present = set(intents)
    if Intent.LEGAL_RISK in present:
        return Priority.P1, "legal risk"

    problem = next((i for i in _PROBLEMS if i in present), None)
    if Intent.CHURN_RISK in present:
        # A customer announcing they are leaving ("not renewing", "switching to X") is often
        # calm, so tone cannot gate it; the chance to keep them (or, on a competitor's watch,
        # to win them) closes when they act, so it gets same-day attention, never P3's queue.
        priority, reason = Priority.P2, _label(Intent.CHURN_RISK)
        if sentiment.compound <= STRONGLY_NEGATIVE:
            reason = f"strongly negative {reason} ({_score_text(sentiment.compound)})"
    elif problem is not None and sentiment.compound <= STRONGLY_NEGATIVE:
        priority = Priority.P2
        reason = f"strongly negative {_label(problem)} ({_score_text(sentiment.compound)})"
    elif problem is not None:
        priority, reason = Priority.P3, _label(problem)
    elif needs_answer := next((i for i in _NEEDS_ANSWER if i in present), None):
        priority, reason = Priority.P3, _label(needs_answer)
    else:
        low = next((i for i in _LOW if i in present), None)
        priority, reason = Priority.P4, _label(low) if low else "no clear intent"

    amplifiers: list[str] = []
    if author_reach is not None and author_reach >= LARGE_AUDIENCE:
        amplifiers.append(f"large audience ({author_reach:,} followers)")
    if velocity >= BURST_VELOCITY:
        amplifiers.append(f"spreading ({velocity} similar posts)")
    if amplifiers:
        priority = _raise(priority)
        reason = ", ".join([reason, *amplifiers])
    return priority, reason


# Marks the part of a reason that traction added, so the next note replaces it.
TRACTION_MARK = "; spreading: "


def with_traction(priority: Priority, reason: str, *, note: str) -> tuple[Priority, str]:
    """Raise an alerted story one level because it keeps spreading, and say so in the reason.

    ``note`` is what happened, e.g. "now on 4 sources, 12 posts"; a later note replaces an
    earlier one in the reason rather than piling up.
    """
    base = reason.split(TRACTION_MARK, 1)[0]
    return _raise(priority), f"{base}{TRACTION_MARK}{note}"
