"""The departments Earful routes mentions to, and the kinds of thing a watch can be about."""

from __future__ import annotations

from enum import StrEnum


class Department(StrEnum):
    SUPPORT = "support"
    PRODUCT = "product"
    PR = "pr"
    SALES = "sales"
    HR = "hr"
    LEGAL = "legal"
    EXEC = "exec"
    RESEARCH = "research"
    COMPETITIVE = "competitive"


class WatchKind(StrEnum):
    BRAND = "brand"
    COMPETITOR = "competitor"
    PRODUCT = "product"
    PERSON = "person"
    TOPIC = "topic"


class Intent(StrEnum):
    COMPLAINT = "complaint"
    BUG_REPORT = "bug_report"
    FEATURE_REQUEST = "feature_request"
    QUESTION = "question"
    PURCHASE_INTENT = "purchase_intent"
    CHURN_RISK = "churn_risk"
    EMPLOYER_TALK = "employer_talk"
    LEGAL_RISK = "legal_risk"
    PRESS = "press"
    PRAISE = "praise"


class Priority(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"
