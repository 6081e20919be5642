"""Escaping, cleaning and cutting untrusted text for Slack mrkdwn."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import mrkdwn

HOSTILE = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!subteam^S1|@team>",
    "<@U123>",
    "<#C123|general>",
    "<https://evil.example|bank.com>",
    "&lt;!channel&gt;",
    "<!chan\u200bnel>",
    "\u202e<!here>\u202c",
    "a <b> & c",
]
INVISIBLE = [
    *map(chr, range(0x200B, 0x2010)),
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2060, 0x2065)),
    *map(chr, range(0x2066, 0x206A)),
    "\ufeff",
]
# An "&" in escaped output must start one of the three escapes Slack decodes.
LONE_AMPERSAND = re.compile(r"&(?!amp;|lt;|gt;)")


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@pytest.mark.parametrize("hostile", HOSTILE)
def test_escape_leaves_no_live_markup(hostile: str) -> None:
    escaped = mrkdwn.escape(hostile)

    assert "<" not in escaped and ">" not in escaped
    assert not LONE_AMPERSAND.search(escaped)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("<@U123>", "&lt;@U123&gt;"),
        ("<https://evil.example|bank.com>", "&lt;https://evil.example|bank.com&gt;"),
        # Already escaped text is escaped again, so it shows literally instead of turning live.
        ("&lt;!channel&gt;", "&amp;lt;!channel&amp;gt;"),
        ("<!chan\u200bnel>", "&lt;!channel&gt;"),
        ("Tom & Jerry", "Tom &amp; Jerry"),
    ],
)
def test_escape_exact(raw: str, expected: str) -> None:
    assert mrkdwn.escape(raw) == expected


@pytest.mark.parametrize("char", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
def test_invisible_and_bidi_characters_are_removed(char: str) -> None:
    assert mrkdwn.escape(f"pay{char}pal") == "paypal"
    assert mrkdwn.plain(f"pay{char}pal", 100) == "paypal"


def test_control_characters_go_but_newlines_and_tabs_stay() -> None:
    assert mrkdwn.escape("a\x00b\x07c\x1bd\x7fe\x85f") == "abcdef"
    assert mrkdwn.escape("one\r\ntwo\rthree\nfour\tfive") == "one\ntwo\nthree\nfour\tfive"


def test_lone_surrogates_are_removed() -> None:
    assert mrkdwn.escape("a\ud800b") == "ab"


def test_joiner_is_kept_inside_emoji_but_not_between_letters() -> None:
    technologist = "👩\u200d💻"
    assert mrkdwn.escape(technologist) == technologist
    assert mrkdwn.escape("❤\ufe0f\u200d🔥") == "❤\ufe0f\u200d🔥"
    assert mrkdwn.escape("a\u200d💻") == "a💻"


@given(st.text())
def test_escape_never_leaves_markup_and_loses_only_invisibles(text: str) -> None:
    escaped = mrkdwn.escape(text)

    assert "<" not in escaped and ">" not in escaped
    assert not LONE_AMPERSAND.search(escaped)
    assert unescape(escaped) == mrkdwn.clean(text)


def test_truncate_keeps_short_text() -> None:
    assert mrkdwn.truncate("short & sweet", 100) == "short &amp; sweet"


def test_truncate_measures_the_escaped_text() -> None:
    # Twenty raw characters grow to 100 escaped ones, far over a limit of 12.
    result = mrkdwn.truncate("&" * 20, 12)

    assert result == "&amp;&amp;…"


def test_truncate_never_splits_an_escape() -> None:
    for limit in range(1, 30):
        result = mrkdwn.truncate("a<b&c>d" * 5, limit)
        assert len(result) <= limit
        assert not LONE_AMPERSAND.search(result.removesuffix("…")), (limit, result)
        assert not re.search(r"&(a|am|amp|l|lt|g|gt)?…$", result), (limit, result)


def test_truncate_edges() -> None:
    assert mrkdwn.truncate("abcdef", 0) == ""
    assert mrkdwn.truncate("abcdef", 1) == "…"
    assert mrkdwn.truncate("abcdef", 6) == "abcdef"
    assert mrkdwn.truncate("abcdefg", 6) == "abcde…"
    assert mrkdwn.truncate("abc    defg", 6) == "abc…"


def test_truncate_does_not_split_a_flag_or_leave_a_joiner() -> None:
    assert mrkdwn.truncate("🇫🇷🇩🇪🇮🇹", 4) == "🇫🇷…"
    assert mrkdwn.truncate("👩\u200d💻 and more", 3) == "👩…"


@given(st.text(), st.integers(min_value=1, max_value=60))
def test_truncate_respects_limit_and_is_a_prefix(text: str, limit: int) -> None:
    result = mrkdwn.truncate(text, limit)

    assert len(result) <= limit
    assert not LONE_AMPERSAND.search(result)
    assert "<" not in result and ">" not in result
    kept = unescape(result.removesuffix("…"))
    assert mrkdwn.clean(text).startswith(kept)


def test_highlight_bolds_spans() -> None:
    text = "I love acme and Acme Corp"

    assert mrkdwn.highlight(text, [(7, 11), (16, 25)], 200) == "I love *acme* and *Acme Corp*"


def test_highlight_spans_refer_to_the_raw_text() -> None:
    # Escaping grows "<" and the zero-width space vanishes; the span still lands on "acme".
    text = "a<b\u200b acme!"
    start = text.index("acme")

    assert mrkdwn.highlight(text, [(start, start + 4)], 200) == "a&lt;b *acme*!"


def test_highlight_merges_clamps_and_trims_spans() -> None:
    text = "hello acme world"

    assert mrkdwn.highlight(text, [(6, 8), (7, 10)], 100) == "hello *acme* world"
    assert mrkdwn.highlight(text, [(11, 99)], 100) == "hello acme *world*"
    assert mrkdwn.highlight(text, [(5, 11)], 100) == "hello *acme* world"
    assert mrkdwn.highlight(text, [(-5, 5)], 100) == "*hello* acme world"
    assert mrkdwn.highlight(text, [(8, 8), (9, 3), (50, 60)], 100) == text


def test_highlight_splits_spans_at_line_breaks() -> None:
    assert mrkdwn.highlight("acme\ncorp", [(0, 9)], 100) == "*acme*\n*corp*"


def test_highlight_cuts_a_span_cleanly_at_the_edge() -> None:
    text = "ab acme cd"

    assert mrkdwn.highlight(text, [(3, 7)], 8) == "ab *ac*…"
    # No room for even one bold character: the span is dropped, not left open.
    assert mrkdwn.highlight(text, [(3, 7)], 5) == "ab…"
    assert mrkdwn.highlight(text, [(3, 7)], 100) == "ab *acme* cd"


def test_highlight_drops_a_span_emptied_by_the_cut() -> None:
    # Only half of the flag fits; it goes, and with it the span's opening asterisk.
    assert mrkdwn.highlight("ab 🇫🇷xyz", [(3, 5)], 7) == "ab…"


def test_highlight_does_not_leave_a_span_ending_in_a_space() -> None:
    result = mrkdwn.highlight("xx acme corp yy", [(3, 12)], 10)

    assert result == "xx *acme*…"


@given(
    st.text(alphabet=st.characters(blacklist_characters="*"), max_size=80),
    st.lists(st.tuples(st.integers(-5, 90), st.integers(-5, 90)), max_size=6),
    st.integers(min_value=1, max_value=70),
)
def test_highlight_is_well_formed(text: str, spans: list[tuple[int, int]], limit: int) -> None:
    result = mrkdwn.highlight(text, spans, limit)

    assert len(result) <= limit
    assert "<" not in result and ">" not in result
    assert not LONE_AMPERSAND.search(result)
    assert result.count("*") % 2 == 0
    for bold in re.findall(r"\*([^*]*)\*", result):
        assert bold and not bold[0].isspace() and not bold[-1].isspace(), result
    kept = unescape(result.removesuffix("…").replace("*", ""))
    assert mrkdwn.clean(text).startswith(kept)


def test_link_builds_a_link_for_http_urls() -> None:
    assert mrkdwn.link("https://example.com/a?b=1&c=2", "Example") == (
        "<https://example.com/a?b=1&amp;c=2|Example>"
    )


def test_link_label_and_url_cannot_break_out() -> None:
    result = mrkdwn.link("https://example.com/x|y> <!channel>", "a|b <!here> & c")

    assert result == "<https://example.com/x%7Cy%3E%20%3C!channel%3E|a∣b &lt;!here&gt; &amp; c>"
    assert result.count("<") == 1 and result.count(">") == 1 and result.count("|") == 1


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:text/html,hi",
        "ftp://example.com/file",
        "https://bank.com@evil.example/login",
        "https://user:pw@example.com/",
        "https:///no-host",
        "https://example.com:99999/",
        "not a url",
        "",
        None,
    ],
)
def test_link_refuses_urls_that_are_not_plain_http(url: str | None) -> None:
    assert mrkdwn.safe_url(url) is None
    assert mrkdwn.link(url, "<label>") == "&lt;label&gt;"


def test_safe_url_normalises() -> None:
    assert mrkdwn.safe_url("HTTPS://Example.COM/ä b") == "https://example.com/%C3%A4%20b"
    assert mrkdwn.safe_url("https://bücher.example/") == "https://xn--bcher-kva.example/"
    assert mrkdwn.safe_url("http://[::1]:8080/x") == "http://[::1]:8080/x"
    assert mrkdwn.safe_url("https://exa\u200bmple.com/%41") == "https://example.com/%41"


def test_safe_url_length_limit() -> None:
    base = "https://example.com/"
    assert mrkdwn.safe_url(base + "a" * (3000 - len(base))) is not None
    assert mrkdwn.safe_url(base + "a" * (3001 - len(base))) is None
    # Percent-encoding can push a URL that looked short enough over the limit.
    assert mrkdwn.safe_url(base + "é" * 1000) is None


def test_link_with_empty_label_shows_the_host() -> None:
    assert mrkdwn.link("https://example.com/x", "\u200b ") == "<https://example.com/x|example.com>"


def test_plain_is_not_escaped_but_cleaned_and_cut() -> None:
    assert mrkdwn.plain("<!channel> & co", 100) == "<!channel> & co"
    assert mrkdwn.plain("a\u202eb\n\n  c", 100) == "ab c"
    assert mrkdwn.plain("line one\nline two", 100, multiline=True) == "line one\nline two"
    assert mrkdwn.plain("abcdefgh", 5) == "abcd…"
    assert mrkdwn.plain("abcdefgh", 0) == ""


@pytest.mark.parametrize("user_id", ["U123", "W0ABCDEF9", "U0EARFUL"])
def test_user_mentions_valid_ids(user_id: str) -> None:
    assert mrkdwn.user(user_id) == f"<@{user_id}>"


@pytest.mark.parametrize(
    "user_id",
    ["u123", "U1", "C123", "B123", "U123>", "U123\n", "U123|x", "<!channel>", "U12 3", "", None],
)
def test_user_rejects_anything_else(user_id: str | None) -> None:
    assert mrkdwn.user(user_id) is None


def test_date_token() -> None:
    at = datetime(2024, 5, 1, 14, 3, tzinfo=timezone(timedelta(hours=2)))

    assert mrkdwn.date(at) == (
        "<!date^1714564980^{date_short_pretty} at {time}|2024-05-01 12:03 UTC>"
    )


def test_date_takes_naive_times_as_utc() -> None:
    naive = datetime(2024, 5, 1, 12, 3)

    assert mrkdwn.date(naive) == mrkdwn.date(naive.replace(tzinfo=UTC))


def test_escape_round_trips_through_html_unescape() -> None:
    # Slack decodes exactly what html.unescape decodes for these three entities.
    raw = "<b> & </b> &amp;"
    assert html.unescape(mrkdwn.escape(raw)) == raw


@pytest.mark.parametrize(
    "label",
    [
        "https://good.example",
        "Acme <https://evil.example|https://good.example> #8",
        "pay at HTTPS : //bank.example now",
        "see www.bank.example",
        "[x](https://good.example)",
    ],
)
def test_a_label_that_reads_as_a_url_is_not_the_link(label: str) -> None:
    # Otherwise "https://good.example" could be the visible face of a link to anywhere.
    result = mrkdwn.link("https://evil.example/x", label)
    assert (
        result == f"{mrkdwn.escape(label).replace('|', '∣')} <https://evil.example/x|evil.example>"
    )
