"""Editing the routing table from Slack: by command, or in the routing editor modal.

Only admins may change it, checked here on the server whatever the UI showed. A change is one
transaction (a rule for every kind at once is all or nothing), and a rule set back to its
default removes the edit, so ``/earful routes`` marks only real team rules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import command_parser as cp
from bot.errors import CommandError, NotAllowed
from bot.replies import Reply, error_reply, text_reply
from bot.routing_modal import (
    EditorMetadata,
    RoutingBlockId,
    RuleChoice,
    editor_view,
    intent_label,
    read_submission,
    route_summary,
)
from storage import routing_rules as rule_store
from storage.db import Database
from storage.models import RoutingRule
from watchers.departments import Department, Intent, WatchKind
from watchers.routing import DEFAULT_ROUTING, Route, RoutingTable

log = logging.getLogger(__name__)


def _unexpected(exc: BaseException, what: str) -> str:
    # bot.interactions imports the command service, which builds this editor: import late.
    from bot.interactions import unexpected

    return unexpected(exc, what)


NOT_ADMIN = (
    "Only Earful admins can change routing. Ask an admin to add your user ID (`{user}`) to "
    "EARFUL_ADMINS."
)


@dataclass(frozen=True, slots=True)
class Routing:
    """The table in force and the team edits behind it, keyed like the table."""

    table: RoutingTable
    edits: Mapping[rule_store.RuleKey, RoutingRule]


@dataclass(frozen=True, slots=True)
class Submission:
    """What a modal submission came to: inline errors, or a saved rule and its confirmation."""

    errors: dict[str, str]
    confirmation: Reply | None = None
    channel_id: str | None = None


class RoutingEditor:
    def __init__(
        self,
        db: Database,
        *,
        admins: Collection[str],
        client: AsyncWebClient,
        on_changed: Callable[[], None] = lambda: None,
        defaults: RoutingTable = DEFAULT_ROUTING,
    ) -> None:
        self._db = db
        self._admins = admins
        self._client = client
        self._on_changed = on_changed
        self._defaults = defaults

    def _require_admin(self, user_id: str) -> None:
        if user_id not in self._admins:
            raise NotAllowed(NOT_ADMIN.format(user=user_id))

    async def load(self) -> Routing:
        async with self._db.read() as session:
            rules = await rule_store.list_rules(session)
        edits = {key: rule for rule in rules if (key := rule_store.rule_key(rule)) is not None}
        return Routing(
            table=rule_store.effective_table(rules, defaults=self._defaults), edits=edits
        )

    async def set_rules(self, command: cp.RuleSet, *, user_id: str) -> Reply:
        self._require_admin(user_id)
        await self._save(
            command.intent, command.kinds, command.department, command.cc, user_id=user_id
        )
        lines = [
            f":white_check_mark: {intent_label(command.intent).capitalize()} on a {kind.value} "
            f"watch → *{route_summary(Route(command.department, command.cc, ''))}*"
            + ("" if command.cc else " (no cc)")
            + (
                " — that is the default, so no team rule is kept."
                if self._is_default(command.intent, kind, command.department, command.cc)
                else "."
            )
            for kind in command.kinds
        ]
        lines.append("New mentions follow it from the next poll; `/earful routes` shows the table.")
        return text_reply("\n".join(lines))

    async def reset_rules(self, command: cp.RuleReset, *, user_id: str) -> Reply:
        self._require_admin(user_id)
        removed: list[WatchKind] = []
        async with self._db.session() as session:
            for kind in command.kinds:
                if await rule_store.reset_rule(session, intent=command.intent, kind=kind):
                    removed.append(kind)
        self._on_changed()
        what = intent_label(command.intent)
        if not removed:
            return text_reply(
                f"There was no team rule for {what} on "
                + ", ".join(f"{k.value}" for k in command.kinds)
                + " watches; the default already applies."
            )
        lines = [
            f":leftwards_arrow_with_hook: {what.capitalize()} on a {kind.value} watch is back to "
            f"the default: *{route_summary(self._default(command.intent, kind))}*."
            for kind in removed
        ]
        return text_reply("\n".join(lines))

    async def open_from_command(
        self, *, user_id: str, text: str, trigger_id: str, channel_id: str | None
    ) -> Reply | None:
        """``/earful route edit [<intent> <kind>]``: open the modal, or say why not."""
        try:
            command = cp.parse_command(text)
        except CommandError as exc:
            return error_reply(str(exc), example=exc.example)
        if not isinstance(command, cp.RouteEdit):
            return error_reply("That is not `/earful route edit`.", example="/earful route edit")
        return await self.open_editor(
            user_id=user_id,
            trigger_id=trigger_id,
            channel_id=channel_id,
            intent=command.intent,
            kind=command.kind,
        )

    async def open_editor(
        self,
        *,
        user_id: str,
        trigger_id: str,
        channel_id: str | None,
        intent: Intent | None,
        kind: WatchKind | None,
    ) -> Reply | None:
        """Open the modal; a reply to show the person instead when that is not possible."""
        try:
            self._require_admin(user_id)
            if kind is None:
                # Nothing named: start on the commonest rule people come to change.
                intent, kind = Intent.COMPLAINT, WatchKind.BRAND
            routing = await self.load()
            view = editor_view(
                table=routing.table,
                defaults=self._defaults,
                intent=intent,
                kind=kind,
                metadata=EditorMetadata(channel_id=channel_id),
            )
            await self._client.views_open(trigger_id=trigger_id, view=view)
        except NotAllowed as exc:
            return error_reply(str(exc))
        except SlackApiError as exc:
            log.warning("views.open failed: %s", exc.response.get("error"))
            return error_reply(
                "Slack did not open the routing editor (it allows 3 seconds). Try again, or use "
                "`/earful route &lt;intent&gt; &lt;kind&gt; &lt;department&gt;`.",
                example=cp.ROUTE_RULE_EXAMPLE,
            )
        except Exception as exc:
            return error_reply(_unexpected(exc, "opening the routing editor"))
        return None

    async def submit(self, *, user_id: str, view: Mapping[str, Any]) -> Submission:
        """Validate and save a submitted editor; errors are keyed by the block to show them on."""
        if user_id not in self._admins:
            return Submission(errors={RoutingBlockId.DEPARTMENT: NOT_ADMIN.format(user=user_id)})
        choice = read_submission(((view.get("state") or {}).get("values")) or {})
        if not isinstance(choice, RuleChoice):
            return Submission(errors=choice)
        try:
            await self._save(
                choice.intent, (choice.kind,), choice.department, choice.cc, user_id=user_id
            )
        except Exception as exc:
            return Submission(
                errors={RoutingBlockId.DEPARTMENT: _unexpected(exc, "saving a routing rule")}
            )
        kept = not self._is_default(choice.intent, choice.kind, choice.department, choice.cc)
        chosen = route_summary(Route(choice.department, choice.cc, ""))
        text = (
            f":white_check_mark: Routing rule saved: {intent_label(choice.intent)} on a "
            f"{choice.kind.value} watch → *{chosen}*"
            + ("." if kept else " (the default, so no team rule is kept).")
        )
        metadata = EditorMetadata.decode(str(view.get("private_metadata") or ""))
        return Submission(errors={}, confirmation=text_reply(text), channel_id=metadata.channel_id)

    async def tell(self, *, user_id: str, channel_id: str | None, reply: Reply) -> None:
        """Ephemeral in the channel the person acted from, else a DM; never raises."""
        try:
            if channel_id:
                try:
                    await self._client.chat_postEphemeral(
                        channel=channel_id, user=user_id, text=reply.text, blocks=reply.blocks
                    )
                    return
                except SlackApiError as exc:
                    # Not in that channel (or it is gone): the DM still reaches the person.
                    log.info("ephemeral to %s failed: %s", channel_id, exc.response.get("error"))
            await self._client.chat_postMessage(
                channel=user_id, text=reply.text, blocks=reply.blocks
            )
        except Exception:
            log.exception("could not tell %s about a routing change", user_id)

    async def _save(
        self,
        intent: Intent | None,
        kinds: Sequence[WatchKind],
        department: Department,
        cc: Sequence[Department],
        *,
        user_id: str,
    ) -> None:
        async with self._db.session() as session:
            for kind in kinds:
                if self._is_default(intent, kind, department, cc):
                    await rule_store.reset_rule(session, intent=intent, kind=kind)
                else:
                    await rule_store.set_rule(
                        session,
                        intent=intent,
                        kind=kind,
                        department=department,
                        cc=cc,
                        updated_by=user_id,
                    )
        self._on_changed()

    def _default(self, intent: Intent | None, kind: WatchKind) -> Route:
        found = self._defaults.get((intent, kind)) or self._defaults.get((None, kind))
        if found is None:
            raise KeyError(f"routing table has no route for {kind.value} watches")
        return found

    def _is_default(
        self,
        intent: Intent | None,
        kind: WatchKind,
        department: Department,
        cc: Sequence[Department],
    ) -> bool:
        # A pair without a default of its own follows the no-intent rule, which may be edited
        # later: a rule set for it explicitly is kept, so it stays what was asked for.
        default = self._defaults.get((intent, kind))
        if default is None:
            return False
        return default.department is department and set(default.cc) == set(cc)
