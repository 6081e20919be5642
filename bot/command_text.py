"""Small helpers every slash-command parser shares for talking about what the user typed."""

from __future__ import annotations

from bot.errors import CommandError


def shorten(value: str, limit: int = 60) -> str:
    """Echo user input back safely: short, escaped, and without backticks that would end our
    code span."""
    value = value.replace("`", "'").replace("\n", " ")
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def no_more(tokens: list[str], example: str) -> None:
    """Refuse words left over after a complete command."""
    if tokens:
        raise CommandError(f"Unexpected `{shorten(' '.join(tokens))}` at the end.", example=example)
