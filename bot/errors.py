"""Domain errors whose message is safe and useful to show the person who caused them."""

from __future__ import annotations


class EarfulError(Exception):
    """Base: ``str(error)`` is a complete, friendly sentence in Slack mrkdwn."""


class CommandError(EarfulError):
    """A slash command was malformed. Carries an example of the right form."""

    def __init__(self, message: str, *, example: str | None = None) -> None:
        super().__init__(message)
        self.example = example


class NotAllowed(EarfulError):
    pass


class NotFound(EarfulError):
    pass


class IllegalTransition(EarfulError):
    """The mention's current state does not allow the action; the message says that state."""


class AlreadyClaimed(IllegalTransition):
    def __init__(self, owner: str, *, state: str = "claimed") -> None:
        super().__init__(f"<@{owner}> has already claimed this (it is *{state}*).")
        self.owner = owner
        self.state = state
