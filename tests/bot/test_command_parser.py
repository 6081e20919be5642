from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.command_parser import (
    Help,
    RouteEdit,
    Routes,
    RouteSet,
    RuleReset,
    RuleSet,
    Status,
    WatchAdd,
    WatchList,
    WatchRemove,
    WatchSetPaused,
    is_route_edit,
    parse_command,
    parse_interval,
)
from bot.errors import CommandError
from watchers.departments import Department, Intent, WatchKind


def test_issue_example_parses() -> None:
    text = (
        'watch add acme "acme OR \\"acme cloud\\" -acmeville" '
        "sources=rss:https://example.com/feed.xml kind=brand every=5m"
    )
    command = parse_command(text)
    assert command == WatchAdd(
        name="acme",
        query='acme OR "acme cloud" -acmeville',
        sources=("rss:https://example.com/feed.xml",),
        kind=WatchKind.BRAND,
        department=None,
        interval_seconds=300,
    )


def test_slack_escaping_and_autolinks_are_undone() -> None:
    # What Slack actually sends with should_escape: links wrapped, & < > as entities,
    # and macOS smart quotes around the query.
    text = (
        "watch add acme “at&amp;t OR acme -&lt;spam&gt;” "
        "sources=rss:<https://example.com/feed.xml?a=1&amp;b=2> dept=support"
    )
    command = parse_command(text)
    assert isinstance(command, WatchAdd)
    assert command.query == "at&t OR acme -<spam>"
    assert command.sources == ("rss:https://example.com/feed.xml?a=1&b=2",)
    assert command.department is Department.SUPPORT


def test_apostrophes_are_not_quotes() -> None:
    command = parse_command('watch add acme "acme\'s app" sources=rss:https://example.com/f')
    assert isinstance(command, WatchAdd)
    assert command.query == "acme's app"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Help()),
        ("help", Help()),
        ("watch list", WatchList()),
        ("watch pause ACME", WatchSetPaused(name="acme", paused=True)),
        ("watch resume acme", WatchSetPaused(name="acme", paused=False)),
        ("watch remove acme", WatchRemove(name="acme")),
        ("routes", Routes()),
        ("status", Status()),
        (
            "route support <#C0123ABCD|support-alerts>",
            RouteSet(Department.SUPPORT, "C0123ABCD", None),
        ),
        ("route PR #press-desk", RouteSet(Department.PR, None, "press-desk")),
    ],
)
def test_simple_commands(text: str, expected: object) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("frobnicate", "don't know the command"),
        ("watch", "add, list, test, exclude, pause"),
        ("watch add", "name and a query"),
        ("watch add acme", "needs a query"),
        ('watch add acme "acme', "double quote is not closed"),
        ("watch add acme acme cloud sources=rss:https://e.com/f", "whole query in double quotes"),
        ('watch add acme "acme"', "sources="),
        ('watch add acme "acme AND" sources=rss:https://e.com/f', "query has a problem"),
        ('watch add acme "acme" sources=twitter:foo', "not a source I know"),
        ('watch add acme "acme" sources=rss:ftp://e.com/f', "only http and https"),
        ('watch add acme "acme" sources=rss:http://127.0.0.1/f', "loopback"),
        ('watch add acme "acme" sources=rss:https://e.com/f kind=rumour', "kind=rumour"),
        ('watch add acme "acme" sources=rss:https://e.com/f dept=marketing', "dept=marketing"),
        ('watch add acme "acme" sources=rss:https://e.com/f every=soon', "not an interval"),
        ('watch add acme "acme" sources=rss:https://e.com/f every=5s', "between 60 seconds"),
        ('watch add acme "acme" sources=rss:https://e.com/f colour=red', "option `colour=`"),
        ('watch add "bad name!" "acme" sources=rss:https://e.com/f', "can't be a watch name"),
        ("route support", "department and a channel"),
        ("route finance #x", "not one of"),
        ("route support general", "not a channel"),
        ("status now", "Unexpected"),
    ],
)
def test_malformed_commands_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse_command(text)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("watch test", "one query in double quotes"),
        ('watch test "acme" "more"', "one query in double quotes"),
        ('watch test "acme OR"', "query has a problem"),
        ('watch test "acme" colour=red', "only takes `sources=`"),
        ('watch test "acme" sources=twitter', "not a source I know"),
        ("watch exclude acme", "a watch name and a query"),
        ('watch exclude acme "x AND"', "exclusion has a problem"),
        ('watch add acme "acme" sources=hn exclude="OR"', "exclusion has a problem"),
    ],
)
def test_malformed_test_and_exclude(text: str, fragment: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse_command(text)
    assert fragment in str(caught.value)


def test_sources_of_every_kind_normalize() -> None:
    command = parse_command(
        'watch add acme "acme" sources=hn,reddit,reddit:r/Python,mastodon:Mastodon.Social,'
        "bluesky,stackexchange:StackOverflow,github,appstore:id284882215,so"
    )
    assert isinstance(command, WatchAdd)
    assert command.sources == (
        "hn",
        "reddit",
        "reddit:r/python",
        "mastodon:mastodon.social",
        "bluesky",
        "stackexchange:stackoverflow",
        "github",
        "appstore:284882215:us",
    )


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("hn:foo", "takes no value"),
        ("mastodon", "needs a value"),
        ("reddit:python!", "reddit:r/&lt;name&gt;"),  # mrkdwn: shown as <name>
        ("appstore:abc", "numeric app id"),
        ("appstore:284882215:usa", "two-letter country"),
        ("mastodon:http://10.0.0.1", "private"),
        ("https://example.com/feed", "needs a type"),
    ],
)
def test_bad_sources(source: str, fragment: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse_command(f'watch add acme "acme" sources={source}')
    assert fragment in str(caught.value)


def test_private_feeds_allowed_when_configured() -> None:
    command = parse_command(
        'watch add acme "acme" sources=rss:http://127.0.0.1:8080/feed.xml', allow_private=True
    )
    assert isinstance(command, WatchAdd)
    assert command.sources == ("rss:http://127.0.0.1:8080/feed.xml",)


@pytest.mark.parametrize(("value", "seconds"), [("5m", 300), ("1h30m", 5400), ("2d", 172800)])
def test_intervals(value: str, seconds: int) -> None:
    assert parse_interval(value) == seconds


def test_echoed_input_is_escaped() -> None:
    with pytest.raises(CommandError) as caught:
        parse_command("<!channel>")
    assert "<!channel>" not in str(caught.value)


_fragments = st.sampled_from(
    [
        "watch",
        "add",
        "acme",
        '"',
        "\\",
        "sources=",
        "rss:",
        "https://e.com/f",
        "kind=",
        "every=",
        "route",
        "#x",
        "reset",
        "edit",
        "complaint",
        "competitor",
        "cc=",
        "sales,pr",
        "*",
        "<#C123|x>",
        "&lt;",
        "(",
        ")",
        "AND",
        "OR",
        "-",
        " ",
        "=",
        "status",
        "“",
    ]
)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(_fragments, max_size=30).map(" ".join)))
def test_any_text_parses_or_gives_a_command_error(text: str) -> None:
    try:
        parse_command(text)
    except CommandError as error:
        assert str(error)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "route complaint competitor sales cc=competitive",
            RuleSet(
                Intent.COMPLAINT,
                (WatchKind.COMPETITOR,),
                Department.SALES,
                (Department.COMPETITIVE,),
            ),
        ),
        (
            "route Bug-Report product support cc=product,pr,product",
            RuleSet(
                Intent.BUG_REPORT,
                (WatchKind.PRODUCT,),
                Department.SUPPORT,
                (Department.PRODUCT, Department.PR),
            ),
        ),
        ("route none brand pr cc=none", RuleSet(None, (WatchKind.BRAND,), Department.PR, ())),
        ("route * topic research", RuleSet(None, (WatchKind.TOPIC,), Department.RESEARCH, ())),
        ("route press all pr", RuleSet(Intent.PRESS, tuple(WatchKind), Department.PR, ())),
        ("route reset complaint competitor", RuleReset(Intent.COMPLAINT, (WatchKind.COMPETITOR,))),
        ("route reset any *", RuleReset(None, tuple(WatchKind))),
        ("route edit", RouteEdit()),
        ("route edit praise person", RouteEdit(Intent.PRAISE, WatchKind.PERSON)),
        # A department first is still the channel form, whatever follows.
        ("route product #product-alerts", RouteSet(Department.PRODUCT, None, "product-alerts")),
    ],
)
def test_routing_rule_commands(text: str, expected: object) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("route", "an intent, a watch kind and a department"),
        ("route complaint", "an intent, a watch kind and a department"),
        ("route complaint brand", "an intent, a watch kind and a department"),
        ("route complaint rumour sales", "`rumour` is not a watch kind"),
        ("route complaint brand finance", "`finance` is not a department"),
        ("route complaint brand sales cc=sales", "can't include sales"),
        ("route complaint brand sales cc=pr,finance", "`finance` is not a department (in `cc=`)"),
        ("route complaint brand sales cc=pr cc=hr", "given twice"),
        ("route complaint brand sales to=pr", "only takes `cc=`"),
        ("route complaint brand sales extra", "an intent, a watch kind and a department"),
        ("route support brand sales", "start with the intent"),
        ("route reset complaint", "an intent and a watch kind"),
        ("route reset gossip brand", "`gossip` is not an intent"),
        ("route edit complaint", "nothing, or an intent and a watch kind"),
        ("route edit complaint all", "one watch kind"),
    ],
)
def test_malformed_routing_rules_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse_command(text)
    assert fragment in str(caught.value)
    assert caught.value.example


def test_route_edit_is_recognised_before_parsing() -> None:
    assert is_route_edit("route edit")
    assert is_route_edit("  Route EDIT complaint brand")
    assert not is_route_edit("route support #edit")
    assert not is_route_edit("routes")
    assert not is_route_edit('route edit "unclosed')
