from __future__ import annotations

from pathlib import Path

import pytest

from watchers.departments import Intent
from watchers.intents import (
    MAX_SCANNED_CHARS,
    IntentHit,
    RulesError,
    detect_intents,
    load_rules,
    normalize_negations,
)


def intents_of(text: str, *, title: str | None = None) -> list[Intent]:
    return [hit.intent for hit in detect_intents(text, title=title)]


def hit_for(text: str, intent: Intent) -> IntentHit:
    return next(hit for hit in detect_intents(text) if hit.intent is intent)


FIRES = [
    # complaint
    (Intent.COMPLAINT, "Still waiting on my refund from @acme, 3 weeks now. Unacceptable."),
    (Intent.COMPLAINT, "45 minutes on hold with Acme and then they hung up. Worst service ever"),
    (Intent.COMPLAINT, "Acme charged me twice this month and nobody answers. Ripped off."),
    (Intent.COMPLAINT, "Really disappointed with Acme lately #NeverAgain"),
    (Intent.COMPLAINT, "Cancelled my subscription to Acme today, the new pricing is a joke"),
    # bug_report
    (Intent.BUG_REPORT, "Acme app crashes every time I open the camera on iOS 17"),
    (Intent.BUG_REPORT, "Can't log in to Acme since this morning, getting error 503"),
    (Intent.BUG_REPORT, "the acme dashboard doesnt load on firefox anymore"),
    (Intent.BUG_REPORT, "Sync does not work after the latest update, files stuck on 'pending'"),
    (Intent.BUG_REPORT, "Acme is down again?? nothing loads"),
    (Intent.BUG_REPORT, "Export button is broken in 4.2, it just freezes"),
    (Intent.BUG_REPORT, "ca n't open the app , it keeps logging me out"),
    (Intent.BUG_REPORT, "Acme stopped sending me notifications last week"),
    (Intent.BUG_REPORT, "Every video goes black after two seconds"),
    (Intent.BUG_REPORT, "Money was deducted from my card but the order shows as failed"),
    (Intent.BUG_REPORT, "@acme please resolve my login issue"),
    (Intent.BUG_REPORT, "Calls connect but there is no audio"),
    (Intent.BUG_REPORT, "Losing my chats every time I switch phones"),
    (Intent.BUG_REPORT, "Kindly look into this, the battery drains overnight"),
    (Intent.BUG_REPORT, "Photos load so slowly even on wifi"),
    (Intent.BUG_REPORT, "The feed is always loading and nothing shows up"),
    (Intent.BUG_REPORT, "Messages arrive late, hope this will be fixed"),
    # feature_request
    (Intent.FEATURE_REQUEST, "Feature request: please add dark mode to the Acme desktop app"),
    (Intent.FEATURE_REQUEST, "It would be great if Acme supported SSO with Okta"),
    (Intent.FEATURE_REQUEST, "Love Acme but I wish it had a proper offline mode"),
    (Intent.FEATURE_REQUEST, "Acme should have an option to mute threads"),
    (Intent.FEATURE_REQUEST, "Any plans to add support for webhooks?"),
    (Intent.FEATURE_REQUEST, "Please bring back the old sidebar, the new one is confusing"),
    (Intent.FEATURE_REQUEST, "Why did you remove the shuffle button?"),
    (Intent.FEATURE_REQUEST, "I would like to schedule posts from the Acme app"),
    (Intent.FEATURE_REQUEST, "Great app but no search function"),
    (Intent.FEATURE_REQUEST, "The toolbar needs to be moved back to the top"),
    (Intent.FEATURE_REQUEST, "I wish that you could pin more than three chats"),
    (Intent.FEATURE_REQUEST, "Why is there no dark mode in 2024"),
    (Intent.FEATURE_REQUEST, "Playlists should be sorted by date"),
    (Intent.FEATURE_REQUEST, "I wished there was a way to export my notes"),
    (Intent.FEATURE_REQUEST, "Wishing offline maps would be available"),
    (Intent.FEATURE_REQUEST, "A tablet layout would be awesome"),
    (Intent.FEATURE_REQUEST, "Why not a landscape mode?"),
    (Intent.FEATURE_REQUEST, "Still waiting for the dark mode option"),
    (Intent.FEATURE_REQUEST, "Pls update more often"),
    (Intent.FEATURE_REQUEST, "A sleep timer must be added"),
    (Intent.FEATURE_REQUEST, "Please get rid of the autoplay on the home screen"),
    (Intent.FEATURE_REQUEST, "It just needs to remember my last position"),
    (Intent.FEATURE_REQUEST, "The timer needs to go up to two hours, it would be handy"),
    (Intent.FEATURE_REQUEST, "Kindly tighten the privacy settings for groups"),
    (Intent.FEATURE_REQUEST, "Some option to hide read receipts, please"),
    # question
    (Intent.QUESTION, "How do I export my Acme data to CSV?"),
    (Intent.QUESTION, "Does anyone know if Acme has a public API"),
    (Intent.QUESTION, "Is there a way to share an Acme board without an account"),
    # purchase_intent
    (Intent.PURCHASE_INTENT, "Looking for an alternative to Acme, it's gotten too expensive"),
    (Intent.PURCHASE_INTENT, "Can anyone recommend a good CRM for a 10-person sales team?"),
    (Intent.PURCHASE_INTENT, "We're switching from Acme to Globex next quarter"),
    (Intent.PURCHASE_INTENT, "Which tool should we use for social listening?"),
    (Intent.PURCHASE_INTENT, "What's Acme's pricing for the enterprise plan"),
    (Intent.PURCHASE_INTENT, "Is Acme Pro worth buying for a solo founder"),
    # churn_risk
    (Intent.CHURN_RISK, "Cancelling my Acme subscription, the price hike was the last straw"),
    (Intent.CHURN_RISK, "We are not renewing our Acme contract next year"),
    (Intent.CHURN_RISK, "Switching to Globex next month, Acme just got too slow"),
    (Intent.CHURN_RISK, "Our team is moving away from Acme after 5 years"),
    (Intent.CHURN_RISK, "Uninstalling Acme. Done."),
    (Intent.CHURN_RISK, "Looking for an alternative to Acme, any ideas?"),
    (Intent.CHURN_RISK, "Acme lost my data again. Never again."),
    (Intent.CHURN_RISK, "Time to find a new bank, Acme Bank keeps adding fees"),
    # employer_talk
    (Intent.EMPLOYER_TALK, "Interviewed at Acme last week, the hiring process was a mess"),
    (Intent.EMPLOYER_TALK, "Acme layoffs hit 10% of staff"),
    (Intent.EMPLOYER_TALK, "I've been working at Acme for 2 years, my manager is great"),
    (Intent.EMPLOYER_TALK, "Acme's glassdoor reviews say the company culture is toxic"),
    (Intent.EMPLOYER_TALK, "Worked at Acme for 3 years, terrible work-life balance"),
    (Intent.EMPLOYER_TALK, "Finally quit my job at Acme"),
    # legal_risk
    (Intent.LEGAL_RISK, "Acme faces class action lawsuit over data breach affecting 2M users"),
    (Intent.LEGAL_RISK, "Pretty sure Acme selling our data violates GDPR"),
    (
        Intent.LEGAL_RISK,
        "The Acme app leaked my location to advertisers, reporting them to the FTC",
    ),
    (Intent.LEGAL_RISK, "I'm going to sue Acme over this"),
    (Intent.LEGAL_RISK, "Acme's hiring bot discriminates against older applicants"),
    # press
    (Intent.PRESS, "Acme announced a $50M Series C today, TechCrunch reports"),
    (Intent.PRESS, "According to Reuters, Acme is in talks to buy Globex"),
    (Intent.PRESS, "Acme press release: new CEO starts in May"),
    (Intent.PRESS, "Analysts expect Acme to miss its Q3 numbers"),
    # praise
    (Intent.PRAISE, "Love the new Acme update, great job team! 🎉"),
    (Intent.PRAISE, "Thank you @acme support, you were amazing"),
    (Intent.PRAISE, "Acme is the best tool we bought this year"),
    (Intent.PRAISE, "Been using Acme for a month, rock solid and super smooth"),
]

DOES_NOT_FIRE = [
    # complaint
    (Intent.COMPLAINT, "Not disappointed at all with Acme"),
    (Intent.COMPLAINT, "In the worst case the import takes a minute"),
    (Intent.COMPLAINT, "Hate to say it, but Acme is actually great"),
    (Intent.COMPLAINT, "You can cancel anytime, which I like"),
    # bug_report
    (Intent.BUG_REPORT, "Acme never crashes on me, rock solid"),
    (Intent.BUG_REPORT, "No bugs so far, super smooth"),
    (Intent.BUG_REPORT, "Can't wait for the Acme release on Monday!"),
    (Intent.BUG_REPORT, "See https://github.com/acme/app/issues/12-crash-on-load for the fix"),
    (Intent.BUG_REPORT, "Took a crash course in Acme today"),
    (Intent.BUG_REPORT, "Prices went down to $5"),
    (Intent.BUG_REPORT, "No sound issues at all on my phone"),
    (Intent.BUG_REPORT, "The screen goes dark when you tap the moon icon, as designed"),
    (Intent.BUG_REPORT, "Losing my mind over how good this update is"),
    (Intent.BUG_REPORT, "Kindly correct me if I'm wrong, the export is CSV only"),
    (Intent.BUG_REPORT, "The page is fast, even on a slow network"),
    (Intent.BUG_REPORT, "Hope this helps anyone else looking for the setting"),
    # feature_request
    (Intent.FEATURE_REQUEST, "Acme has exactly the options I need"),
    (Intent.FEATURE_REQUEST, "What should I do if my trial runs out"),
    (Intent.FEATURE_REQUEST, "Honestly we don't need more features"),
    (Intent.FEATURE_REQUEST, "I would like to know why my order is late"),
    (Intent.FEATURE_REQUEST, "Please refund my last payment"),
    (Intent.FEATURE_REQUEST, "This should be fixed by now"),
    (Intent.FEATURE_REQUEST, "She wished me a happy birthday through the app"),
    (Intent.FEATURE_REQUEST, "Wishing everyone a happy new year"),
    (Intent.FEATURE_REQUEST, "Everything about the new design is awesome"),
    (Intent.FEATURE_REQUEST, "Why not? It's free"),
    (Intent.FEATURE_REQUEST, "Waiting for the page to load"),
    (Intent.FEATURE_REQUEST, "Please update your phone's OS before installing"),
    (Intent.FEATURE_REQUEST, "Notes can be added from the share menu"),
    (Intent.FEATURE_REQUEST, "Please delete my account and all my data"),
    (Intent.FEATURE_REQUEST, "The app just needs to be fixed"),
    (Intent.FEATURE_REQUEST, "You need to restart your phone first"),
    (Intent.FEATURE_REQUEST, "Kindly respond to my ticket about the refund"),
    (Intent.FEATURE_REQUEST, "There is an option to mute threads, it works"),
    # question
    (Intent.QUESTION, "Acme shipped version 4 today."),
    (Intent.QUESTION, "Read https://acme.com/blog?id=42 for details"),
    # purchase_intent
    (Intent.PURCHASE_INTENT, "I'd highly recommend Acme to anyone"),
    (Intent.PURCHASE_INTENT, "Switching to dark mode fixed my eye strain"),
    # churn_risk
    (Intent.CHURN_RISK, "Switching to dark mode fixed my eye strain"),
    (Intent.CHURN_RISK, "Uninstalled and reinstalled Acme, now it works"),
    (Intent.CHURN_RISK, "I would never switch away from Acme"),
    (Intent.CHURN_RISK, "Renewed my Acme subscription for another year"),
    (Intent.CHURN_RISK, "How do I cancel an order on Acme?"),
    (Intent.CHURN_RISK, "You can cancel anytime, which I like"),
    (Intent.CHURN_RISK, "Not planning to leave Acme any time soon"),
    # employer_talk
    (Intent.EMPLOYER_TALK, "The app isn't working at all today"),
    (Intent.EMPLOYER_TALK, "It worked at first but now it's slow"),
    (Intent.EMPLOYER_TALK, "Pop culture moment: Acme ad at the Super Bowl"),
    # legal_risk
    (Intent.LEGAL_RISK, "Sue from Acme support was super helpful"),
    (Intent.LEGAL_RISK, "There's a memory leak in Acme 2.3"),
    (Intent.LEGAL_RISK, "I can't recall the last time Acme let me down"),
    (Intent.LEGAL_RISK, "It's the second Tuesday of the month"),
    # press
    (Intent.PRESS, "I reported this bug to Acme three times"),
    (Intent.PRESS, "According to the docs this should work"),
    # praise
    (Intent.PRAISE, "What's the best alternative to Acme for small teams?"),
    (Intent.PRAISE, "Best way to migrate off Acme?"),
    (Intent.PRAISE, "I would love to see an offline mode in Acme"),
    (Intent.PRAISE, "I used to love this app"),
    (Intent.PRAISE, "Acme was great until the last update"),
    (Intent.PRAISE, "Thanks for nothing, Acme"),
    (Intent.PRAISE, "Acme isn't good anymore"),
]


@pytest.mark.parametrize(("intent", "text"), FIRES)
def test_intent_fires_on_realistic_posts(intent: Intent, text: str) -> None:
    assert intent in intents_of(text)


@pytest.mark.parametrize(("intent", "text"), DOES_NOT_FIRE)
def test_intent_does_not_fire_on_near_misses(intent: Intent, text: str) -> None:
    assert intent not in intents_of(text)


def test_every_intent_has_positive_and_negative_examples() -> None:
    assert {intent for intent, _ in FIRES} == set(Intent)
    assert {intent for intent, _ in DOES_NOT_FIRE} == set(Intent)


@pytest.mark.parametrize(
    "text",
    [
        "Looking for an alternative to Acme",
        "Moving away from Acme, which tool do you use?",
        "Switching from Acme to Globex",
    ],
)
def test_leaving_a_product_is_both_churn_and_a_buyer(text: str) -> None:
    # The rules cannot know whose customer this is; routing reads the watch kind and picks
    # churn on our brand (a customer to save) or purchase intent on a competitor (a lead).
    assert {Intent.CHURN_RISK, Intent.PURCHASE_INTENT} <= set(intents_of(text))


def test_cancelling_an_account_is_churn_but_cancelling_an_order_is_not() -> None:
    assert hit_for("Cancelled my Acme membership today", Intent.CHURN_RISK).triggers == (
        "Cancelled my Acme membership",
    )
    assert Intent.CHURN_RISK not in intents_of("Had to cancel my order, it never shipped")


def test_triggers_are_the_words_of_the_post_in_text_order() -> None:
    hit = hit_for("Still waiting for a refund, 3 weeks on hold. Terrible.", Intent.COMPLAINT)
    assert hit.triggers == ("Still waiting", "refund", "on hold", "Terrible")


def test_hits_are_ordered_by_strength() -> None:
    hits = detect_intents(
        "Worst support ever: still waiting on a refund, totally ripped off. Anyone else?"
    )
    assert [h.intent for h in hits] == [Intent.COMPLAINT, Intent.QUESTION]
    assert hits[0].score > hits[1].score


def test_overlapping_triggers_count_once() -> None:
    # "keeps crashing" and "crashing" are one piece of evidence.
    assert hit_for("it keeps crashing", Intent.BUG_REPORT).score == 1.0


def test_a_title_counts_more_than_the_body() -> None:
    in_title = detect_intents("details below", title="Export crashes on large files")
    in_body = detect_intents("Export crashes on large files")
    assert in_title[0].intent is in_body[0].intent is Intent.BUG_REPORT
    assert in_title[0].score > in_body[0].score


def test_a_question_in_the_title_is_a_question() -> None:
    assert Intent.QUESTION in intents_of("I tried the docs.", title="How do I rotate API keys?")


@pytest.mark.parametrize(
    "text",
    [
        "it doesn't work",
        "it doesnt work",
        "it does not work",
        "it does n't work",
        "it doesn’t work",
    ],
)
def test_every_spelling_of_a_negation_matches(text: str) -> None:
    assert intents_of(text) == [Intent.BUG_REPORT]


def test_negations_are_normalized_to_contractions() -> None:
    assert normalize_negations("I cannot, it will not, ca n't, wont") == (
        "I can't, it won't, can't, won't"
    )
    assert normalize_negations("want") == "want"


def test_hashtags_are_read_as_words() -> None:
    assert Intent.COMPLAINT in intents_of("Thanks @acme #WorstServiceEver")


def test_text_beyond_the_scan_cap_is_ignored() -> None:
    assert intents_of("x " * MAX_SCANNED_CHARS + "the app crashes") == []


def test_default_rules_are_compiled_once() -> None:
    assert load_rules() is load_rules()


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "intents.yml"
    path.write_text(body, encoding="utf-8")
    return path


def test_a_custom_rules_file_replaces_the_default(tmp_path: Path) -> None:
    rules = load_rules(
        write(
            tmp_path,
            """
title_weight: 2
intents:
  praise:
    patterns:
      - chef's kiss
      - {re: 'slaps|bangs', weight: 0.5}
      - {phrase: no notes, weight: 0.5}
    unless:
      - slaps on the wrist
""",
        )
    )
    assert [h.intent for h in detect_intents("acme chefs kiss", rules=rules)] == [Intent.PRAISE]
    assert detect_intents("acme slaps", rules=rules) == []  # 0.5 is under the threshold
    both = detect_intents("acme slaps, no notes", rules=rules)
    assert both == [IntentHit(Intent.PRAISE, ("slaps", "no notes"))]
    assert detect_intents("a few slaps on the wrist, no notes", rules=rules) == []
    assert detect_intents("the app crashes", rules=rules) == []  # default rules not used
    assert detect_intents("", title="chef's kiss", rules=rules)[0].score == 2.0


def test_phrases_match_whole_words_hyphens_and_negation_spellings(tmp_path: Path) -> None:
    rules = load_rules(
        write(tmp_path, 'intents:\n  bug_report:\n    patterns: ["can\'t log in", bug]\n')
    )
    for text in ("cant log-in", "I cannot log in", "can not  log in", "BUG"):
        assert detect_intents(text, rules=rules), text
    for text in ("debugging", "bugs", "can log in"):
        assert not detect_intents(text, rules=rules), text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("intents:\n  gossip:\n    patterns: [tea]\n", "unknown intent 'gossip'"),
        ("intents:\n  praise:\n    patterns: [{re: '(unclosed'}]\n", "invalid pattern"),
        ("intents:\n  praise:\n    patterns: [{re: 'a?'}]\n", "matches the empty string"),
        ("intents:\n  praise:\n    patterns: [{phrase: a, re: b}]\n", "exactly one of"),
        ("intents:\n  praise:\n    patterns: [{phrase: a, weight: 0}]\n", "positive number"),
        ("intents:\n  praise:\n    patterns: []\n", "no patterns"),
        ("intents: [praise]\n", "'intents' mapping"),
        ("intents: {praise: {patterns: [a]\n", "not valid YAML"),
    ],
)
def test_malformed_rules_are_rejected_with_the_reason(
    tmp_path: Path, body: str, message: str
) -> None:
    path = write(tmp_path, body)
    with pytest.raises(RulesError, match=r"intents\.yml") as excinfo:
        load_rules(path)
    assert message in str(excinfo.value)
