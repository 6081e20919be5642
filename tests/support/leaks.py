"""Searching what Earful printed (logs, error messages) for secrets it must never show."""

from __future__ import annotations

from collections.abc import Iterable


def leaks(output: str, secrets: Iterable[str]) -> list[str]:
    """The ``secrets`` that ``output`` shows, whole or by their distinctive middle third.

    A secret cut short on purpose (a "xoxb-1111-…" prefix) is fine; its middle is not.
    """
    return [s for s in secrets if s in output or s[len(s) // 3 : 2 * len(s) // 3] in output]


def assert_no_leaks(output: str, secrets: Iterable[str]) -> None:
    """Fails naming the secrets ``output`` shows and the first lines that show them."""
    found = leaks(output, secrets)
    lines = [line for line in output.splitlines() if leaks(line, found)][:5]
    assert not found, f"secrets shown: {found}, in lines such as {lines}"
