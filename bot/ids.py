"""Every action_id and block_id Earful puts on an alert card, in one place.

Builders and handlers import these instead of repeating strings, so a renamed id cannot leave
a button that nobody listens to.
"""

from __future__ import annotations

from enum import StrEnum


class ActionId(StrEnum):
    CLAIM = "alert_claim"
    ESCALATE = "alert_escalate"
    RESOLVE = "alert_resolve"
    DISMISS = "alert_dismiss"
    REOPEN = "alert_reopen"
    REROUTE = "alert_reroute"
    # A link button still sends an interaction to the app, which has to ack it.
    OPEN_ORIGINAL = "alert_open_original"


class BlockId(StrEnum):
    ALERT_HEADER = "alert_header"
    ALERT_CONTEXT = "alert_context"
    ALERT_BODY = "alert_body"
    ALERT_FIELDS = "alert_fields"
    ALERT_STATE = "alert_state"
    ALERT_ACTIONS = "alert_actions"
    ALERT_RETIRED = "alert_retired"
