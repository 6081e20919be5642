"""Every action_id and block_id Earful puts on an alert card, in one place.

Builders and handlers import these instead of repeating strings, so a renamed id cannot leave
a button that nobody listens to.
"""

from __future__ import annotations

from enum import StrEnum


class ActionId(StrEnum):
    CLAIM = "alert_claim"
    ANSWER = "alert_answer"
    ESCALATE = "alert_escalate"
    RESOLVE = "alert_resolve"
    DISMISS = "alert_dismiss"
    REOPEN = "alert_reopen"
    REROUTE = "alert_reroute"
    # A link button still sends an interaction to the app, which has to ack it.
    OPEN_ORIGINAL = "alert_open_original"
    # Opens the answer modal (a reply draft, a note, saved answers); ANSWER only marks it.
    WRITE_ANSWER = "alert_write_answer"
    # Queue lists (/earful queue, mine, search) and the mute offer after a noise dismissal.
    QUEUE_PREVIOUS = "queue_previous"
    QUEUE_NEXT = "queue_next"
    QUEUE_CLAIM = "queue_claim"
    QUEUE_OPEN = "queue_open"
    MUTE_AUTHOR = "mute_author"
    MUTE_DOMAIN = "mute_domain"


class BlockId(StrEnum):
    ALERT_HEADER = "alert_header"
    ALERT_CONTEXT = "alert_context"
    ALERT_BODY = "alert_body"
    ALERT_FIELDS = "alert_fields"
    ALERT_STATE = "alert_state"
    ALERT_ACTIONS = "alert_actions"
    ALERT_RETIRED = "alert_retired"


class AnswerCallbackId(StrEnum):
    SUBMIT = "answer_submit"


class AnswerBlockId(StrEnum):
    POST = "answer_post"
    ORIGINAL = "answer_original"
    SUGGESTIONS = "answer_suggestions"
    # The draft's block id gets a revision suffix ("answer_draft.2"): Slack keeps what was typed
    # into an input whose block id is unchanged, so filling in a saved answer needs a new one.
    DRAFT = "answer_draft"
    NOTE = "answer_note"
    SAVE = "answer_save"
    TITLE = "answer_title"
    NOTICE = "answer_notice"


class AnswerActionId(StrEnum):
    OPEN_ORIGINAL = "answer_open_original"
    PICK = "answer_pick"
    DRAFT = "answer_draft_text"
    NOTE = "answer_note_text"
    SAVE = "answer_save_choice"
    TITLE = "answer_title_text"


class DigestActionId(StrEnum):
    # Several drill-down buttons share one actions block, where Slack wants distinct ids:
    # each gets a suffix (".0", ".1", …) and one listener matches the prefix.
    DRILL = "digest_drill"
    DRILL_MENU = "digest_drill_menu"
    EXPORT = "digest_export"
