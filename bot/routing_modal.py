"""The routing editor: a modal to change one (intent, watch kind) rule. Pure builders.

Opened by ``/earful route edit`` or the *Edit a rule* button under ``/earful routes``; its
submission is read back with ``read_submission``, which says what is wrong per input block so
Slack can show the errors inline (``response_action: "errors"``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextObject,
    StaticMultiSelectElement,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from watchers.departments import Department, Intent, WatchKind
from watchers.routing import SEVERITY, Route, RoutingTable

NO_INTENT_VALUE = "*"
NO_INTENT_LABEL = "no clear intent (or no rule of its own)"
# Severity order first (how the table decides), then the intents it does not rank.
INTENT_ORDER: tuple[Intent, ...] = (*SEVERITY, *(i for i in Intent if i not in SEVERITY))


class RoutingCallbackId(StrEnum):
    EDIT = "routing_rule_edit"


class RoutingActionId(StrEnum):
    OPEN_EDITOR = "routing_open_editor"
    INTENT = "routing_intent"
    KIND = "routing_kind"
    DEPARTMENT = "routing_department"
    CC = "routing_cc"


class RoutingBlockId(StrEnum):
    EDIT_ACTIONS = "routing_edit_actions"
    INTENT = "routing_intent_block"
    KIND = "routing_kind_block"
    DEPARTMENT = "routing_department_block"
    CC = "routing_cc_block"
    CURRENT = "routing_current_block"


@dataclass(frozen=True, slots=True)
class EditorMetadata:
    """Carried in the modal's private_metadata: where to confirm the change."""

    channel_id: str | None

    def encode(self) -> str:
        return json.dumps({"channel": self.channel_id})

    @classmethod
    def decode(cls, raw: str | None) -> EditorMetadata:
        try:
            data = json.loads(raw or "{}")
        except ValueError:
            return cls(channel_id=None)
        channel = data.get("channel") if isinstance(data, dict) else None
        return cls(channel_id=str(channel)[:32] if isinstance(channel, str) and channel else None)


@dataclass(frozen=True, slots=True)
class RuleChoice:
    intent: Intent | None
    kind: WatchKind
    department: Department
    cc: tuple[Department, ...]


def intent_label(intent: Intent | None) -> str:
    return intent.value.replace("_", " ") if intent is not None else NO_INTENT_LABEL


def intent_value(intent: Intent | None) -> str:
    return intent.value if intent is not None else NO_INTENT_VALUE


def route_summary(route: Route) -> str:
    cc = f" (cc {', '.join(d.value for d in route.cc)})" if route.cc else ""
    return f"{route.department.value}{cc}"


def _option(text: str, value: str) -> Option:
    return Option(text=PlainTextObject(text=text[:75]), value=value)


def _intent_option(intent: Intent | None) -> Option:
    return _option(intent_label(intent), intent_value(intent))


def _department_option(department: Department) -> Option:
    return _option(department.value, department.value)


def editor_button(intent: Intent | None = None, kind: WatchKind | None = None) -> dict[str, Any]:
    """An actions block with the button that opens the editor (on a rule, when given)."""
    value = f"{intent_value(intent)}|{kind.value}" if kind is not None else ""
    return ActionsBlock(
        block_id=RoutingBlockId.EDIT_ACTIONS,
        elements=[
            ButtonElement(
                text="Edit a routing rule",
                action_id=RoutingActionId.OPEN_EDITOR,
                value=value or "open",
            )
        ],
    ).to_dict()


def parse_button_value(value: str | None) -> tuple[Intent | None, WatchKind | None]:
    """The rule a button starts the editor on; anything unreadable starts it on the default."""
    intent_part, _, kind_part = (value or "").partition("|")
    try:
        kind = WatchKind(kind_part)
        intent = None if intent_part == NO_INTENT_VALUE else Intent(intent_part)
    except ValueError:
        return Intent.COMPLAINT, None
    return intent, kind


def editor_view(
    *,
    table: RoutingTable,
    defaults: RoutingTable,
    intent: Intent | None,
    kind: WatchKind,
    metadata: EditorMetadata,
) -> dict[str, Any]:
    """The modal, prefilled with the current rule for (intent, kind)."""
    current = table.get((intent, kind)) or table.get((None, kind))
    default = defaults.get((intent, kind)) or defaults.get((None, kind))
    intent_options = [_intent_option(i) for i in (*INTENT_ORDER, None)]
    kind_options = [_option(k.value, k.value) for k in WatchKind]
    department_options = [_department_option(d) for d in Department]
    cc_element = StaticMultiSelectElement(
        action_id=RoutingActionId.CC,
        placeholder="Departments that also see the alert",
        options=department_options,
        initial_options=[_department_option(d) for d in current.cc] if current else None,
    )
    notes = []
    if current is not None:
        notes.append(
            f"*Now*: {intent_label(intent)} on a {kind.value} watch → {route_summary(current)}"
        )
    if default is not None:
        notes.append(f"*Default*: {route_summary(default)} (choose it to undo a team rule)")
    notes.append(
        "The department gets the alert in its channel; cc departments see it too. "
        "`/earful routes` shows the whole table."
    )
    view = View(
        type="modal",
        callback_id=RoutingCallbackId.EDIT,
        title="Routing rule",
        submit="Save",
        close="Cancel",
        private_metadata=metadata.encode(),
        blocks=[
            InputBlock(
                block_id=RoutingBlockId.INTENT,
                label="When a mention's main intent is",
                element=StaticSelectElement(
                    action_id=RoutingActionId.INTENT,
                    options=intent_options,
                    initial_option=_intent_option(intent),
                ),
            ),
            InputBlock(
                block_id=RoutingBlockId.KIND,
                label="on a watch of kind",
                element=StaticSelectElement(
                    action_id=RoutingActionId.KIND,
                    options=kind_options,
                    initial_option=_option(kind.value, kind.value),
                ),
            ),
            InputBlock(
                block_id=RoutingBlockId.DEPARTMENT,
                label="send it to",
                element=StaticSelectElement(
                    action_id=RoutingActionId.DEPARTMENT,
                    options=department_options,
                    initial_option=_department_option(current.department) if current else None,
                ),
            ),
            InputBlock(
                block_id=RoutingBlockId.CC,
                label="and copy",
                optional=True,
                element=cc_element,
            ),
            ContextBlock(
                block_id=RoutingBlockId.CURRENT,
                elements=[MarkdownTextObject(text="\n".join(notes))],
            ),
        ],
    )
    return view.to_dict()


def _state(values: Mapping[str, Any], block: RoutingBlockId, action: RoutingActionId) -> Any:
    state = (values.get(block) or {}).get(action) or {}
    return state if isinstance(state, dict) else {}


def _picked(values: Mapping[str, Any], block: RoutingBlockId, action: RoutingActionId) -> str:
    option = _state(values, block, action).get("selected_option") or {}
    return str(option.get("value") or "") if isinstance(option, dict) else ""


def read_submission(values: Mapping[str, Any]) -> RuleChoice | dict[str, str]:
    """The chosen rule, or an error message per input block (Slack shows them inline)."""
    errors: dict[str, str] = {}
    intent: Intent | None = None
    kind: WatchKind | None = None
    department: Department | None = None
    raw_intent = _picked(values, RoutingBlockId.INTENT, RoutingActionId.INTENT)
    try:
        intent = None if raw_intent == NO_INTENT_VALUE else Intent(raw_intent)
    except ValueError:
        errors[RoutingBlockId.INTENT] = "Pick an intent."
    try:
        kind = WatchKind(_picked(values, RoutingBlockId.KIND, RoutingActionId.KIND))
    except ValueError:
        errors[RoutingBlockId.KIND] = "Pick a kind of watch."
    try:
        department = Department(
            _picked(values, RoutingBlockId.DEPARTMENT, RoutingActionId.DEPARTMENT)
        )
    except ValueError:
        errors[RoutingBlockId.DEPARTMENT] = "Pick the department that gets the alert."
    cc: list[Department] = []
    chosen = _state(values, RoutingBlockId.CC, RoutingActionId.CC).get("selected_options")
    for option in chosen if isinstance(chosen, list) else []:
        try:
            copied = Department(str(option.get("value")) if isinstance(option, dict) else "")
        except ValueError:
            errors[RoutingBlockId.CC] = "One of these is not a department."
            break
        if copied is department:
            errors[RoutingBlockId.CC] = (
                f"{copied.value} already gets the alert; copy other departments only."
            )
            break
        if copied not in cc:
            cc.append(copied)
    if errors or kind is None or department is None:
        return errors
    return RuleChoice(intent=intent, kind=kind, department=department, cc=tuple(cc))
