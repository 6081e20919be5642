"""The knowledge base: answers people saved for reuse, found by search and offered for a mention.

Ranking is Okapi BM25 (Robertson and Spärck Jones; k1 = 1.2, b = 0.75, with Lucene's idf, which
never goes negative) computed in Python over a bounded candidate set. The database only narrows
the candidates: every saved answer keeps its normalised words in ``terms``, and a portable
``LIKE`` on them picks at most ``CANDIDATES`` answers sharing a word with the query, so the same
code runs on SQLite and PostgreSQL and no full-text extension has to be set up on either.
For a mention, the query is its title, text and intents against each answer's title, body and
intents; an answer written for the same department ranks a little higher.

``/earful answers [text]`` lists or searches the base; ``/earful answers delete <id>`` removes an
answer, for its author or an admin.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import ContextBlock, HeaderBlock, MarkdownTextObject, SectionBlock

from bot import mrkdwn
from bot.errors import CommandError, NotAllowed, NotFound
from bot.replies import Reply, text_reply
from storage import answers as answer_store
from storage.db import Database
from storage.models import Mention, SavedAnswer

SEARCH_EXAMPLE = "/earful answers refund lost order"
DELETE_EXAMPLE = "/earful answers delete 12"
MAX_SEARCH = 300  # characters of search text; more says nothing BM25 can use
CANDIDATES = 500  # answers ranked per query, at most
QUERY_WORDS = 24  # distinct words of a query used to pick candidates
SHOWN = 10  # answers listed by /earful answers
SUGGESTED = 10  # answers offered in the modal
K1 = 1.2
B = 0.75
SAME_DEPARTMENT_BOOST = 1.25
SNIPPET = 280

# Words too common to tell answers apart. Short on purpose: BM25's idf discounts the rest.
_STOPWORDS = """a an and are as at be been but by can could did do does for from had has have he
her his how i if in into is it its just me my no not of on or our so that the their them then
there they this to too was we were what when where which who why will with would you your hi
hello thanks thank please"""
STOPWORDS = frozenset(_STOPWORDS.split())
_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script; "_" and punctuation split
_INTENT_PREFIX = "intent:"


@dataclass(frozen=True, slots=True)
class AnswerSearch:
    """``/earful answers [text]``: the most used answers, or those that best match ``text``."""

    text: str = ""


@dataclass(frozen=True, slots=True)
class AnswerDelete:
    answer_id: int


AnswersCommand = AnswerSearch | AnswerDelete


def parse_answers(tokens: Sequence[str]) -> AnswersCommand:
    """The words after ``/earful answers``, already tokenised by bot.command_parser."""
    if tokens and tokens[0].lower() in ("delete", "remove", "rm"):
        if len(tokens) != 2:
            raise CommandError("`answers delete` takes one answer number.", example=DELETE_EXAMPLE)
        raw = tokens[1].removeprefix("#")
        if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
            raise CommandError(
                "Give the answer's number, as `/earful answers` lists it.", example=DELETE_EXAMPLE
            )
        return AnswerDelete(answer_id=int(raw))
    return AnswerSearch(text=" ".join(tokens)[:MAX_SEARCH].strip())


# --------------------------------------------------------------------------- words and ranking


def _fold(word: str) -> str:
    # Plurals only: "refunds" and "refund" must meet, and a real stemmer is a dependency for
    # one rule. "-ss", "-us" and "-is" words (access, status, analysis) keep their "s".
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    """``text`` as search terms: NFKC, case-folded, split on non-letters, stopwords dropped."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return [
        _fold(word)
        for word in _WORD.findall(folded)
        if len(word) > 1 and word not in STOPWORDS and not word.isdigit()
    ]


def intent_terms(intents: Sequence[str]) -> list[str]:
    """Intents as terms of their own ("intent:refund_request"), apart from ordinary words."""
    return [_INTENT_PREFIX + intent for intent in intents if intent]


def answer_terms(title: str, body: str, intents: Sequence[str]) -> list[str]:
    # The title counts twice: it is what its author says the answer is about.
    return words(title) * 2 + words(body) + intent_terms(intents)


def mention_intents(mention: Mention) -> list[str]:
    found = []
    for item in mention.intents or []:
        intent = item.get("intent") if isinstance(item, dict) else None
        if isinstance(intent, str) and intent:
            found.append(intent)
    return found


def mention_terms(mention: Mention) -> list[str]:
    return words(f"{mention.title or ''}\n{mention.text}") + intent_terms(mention_intents(mention))


def bm25(query: Sequence[str], documents: Sequence[Sequence[str]]) -> list[float]:
    """Okapi BM25 of each document for ``query``; each distinct query term counts once."""
    if not documents:
        return []
    count = len(documents)
    average = sum(len(d) for d in documents) / count or 1.0
    frequency: Counter[str] = Counter()
    for document in documents:
        frequency.update(set(document))
    wanted = [t for t in dict.fromkeys(query) if frequency[t]]
    idf = {t: math.log(1 + (count - frequency[t] + 0.5) / (frequency[t] + 0.5)) for t in wanted}
    scores = []
    for document in documents:
        tf = Counter(document)
        norm = K1 * (1 - B + B * len(document) / average)
        scores.append(sum(idf[t] * tf[t] * (K1 + 1) / (tf[t] + norm) for t in wanted if tf[t]))
    return scores


@dataclass(frozen=True, slots=True)
class Ranked:
    answer: SavedAnswer
    score: float


def rank(
    query: Sequence[str],
    answers: Sequence[SavedAnswer],
    *,
    department: str | None = None,
    limit: int = SUGGESTED,
) -> list[Ranked]:
    """The answers that share a term with ``query``, best first (ties: most used, newest)."""
    scores = bm25(query, [a.terms.split() for a in answers])
    ranked = []
    for answer, score in zip(answers, scores, strict=True):
        if score <= 0:
            continue
        if department is not None and answer.department == department:
            score *= SAME_DEPARTMENT_BOOST
        ranked.append(Ranked(answer, score))
    ranked.sort(key=lambda r: (-r.score, -r.answer.use_count, -(r.answer.id or 0)))
    return ranked[:limit]


# --------------------------------------------------------------------------- replies


def _section(text: str) -> dict[str, Any]:
    return SectionBlock(text=MarkdownTextObject(text=text, verbatim=True)).to_dict()


def _context(text: str) -> dict[str, Any]:
    return ContextBlock(elements=[MarkdownTextObject(text=text, verbatim=True)]).to_dict()


def answer_line(answer: SavedAnswer) -> str:
    """One answer as ``/earful answers`` shows it; everything people typed is escaped."""
    title = mrkdwn.truncate(" ".join(mrkdwn.clean(answer.title).split()), 150)
    facts = [f"used {answer.use_count}×"]
    if answer.department:
        facts.insert(0, mrkdwn.truncate(answer.department, 20))
    author = mrkdwn.user(answer.author)
    if author:
        facts.append(f"by {author}")
    facts.append(mrkdwn.date(answer.created_at, "{date_short}"))
    body = mrkdwn.truncate(" ".join(mrkdwn.clean(answer.body).split()), SNIPPET)
    return f"*#{answer.id}* *{title}* · " + " · ".join(facts) + f"\n>{body}"


def answers_reply(found: Sequence[SavedAnswer], *, query: str, total: int) -> Reply:
    if not total:
        return text_reply(
            "No saved answers yet. Answer an alert with *Answer…* and tick "
            "*Save as a reusable answer*."
        )
    shown = found[:SHOWN]
    if query:
        heading = f"Saved answers matching “{query[:60]}”"
        summary = f"{len(found)} saved answer(s) match; best first."
    else:
        heading = "Saved answers"
        summary = f"{total} saved answer(s); the most used first."
    if not shown:
        return text_reply(
            f"No saved answer matches `{mrkdwn.escape(query[:100]).replace('`', chr(39))}`. "
            "`/earful answers` lists them all."
        )
    blocks = [HeaderBlock(text=mrkdwn.plain(heading, 140)).to_dict(), _context(summary)]
    blocks += [_section(answer_line(answer)) for answer in shown]
    if len(found) > len(shown):
        blocks.append(_context(f"…and {len(found) - len(shown)} more. Search to narrow it down."))
    blocks.append(
        _context(
            "Search with `/earful answers &lt;words&gt;`; remove one with "
            "`/earful answers delete &lt;number&gt;` (its author or an admin)."
        )
    )
    titles = ", ".join(f"#{a.id} {mrkdwn.plain(a.title, 60)}" for a in shown)
    return Reply(text=mrkdwn.plain(f"{heading}: {titles}", 2900), blocks=blocks)


# --------------------------------------------------------------------------- the service


class KnowledgeBase:
    def __init__(self, db: Database, *, admins: Collection[str]) -> None:
        self._db = db
        self._admins = frozenset(admins)

    async def run(self, command: AnswersCommand, *, user_id: str) -> Reply:
        if isinstance(command, AnswerDelete):
            return await self.delete(command.answer_id, user_id=user_id)
        return await self.search(command.text)

    async def search(self, text: str) -> Reply:
        query = words(text)
        async with self._db.read() as session:
            total = await answer_store.count_answers(session)
            if not query:
                found = await answer_store.most_used(session, limit=SHOWN + 1)
            else:
                candidates = await answer_store.candidates(
                    session, terms=_candidate_words(query), limit=CANDIDATES
                )
        if query:
            found = [r.answer for r in rank(query, candidates, limit=CANDIDATES)]
        return answers_reply(found, query=text.strip(), total=total)

    async def suggest(self, mention: Mention, *, limit: int = SUGGESTED) -> list[SavedAnswer]:
        """Saved answers for ``mention``, best first; none when nothing shares a word with it."""
        query = mention_terms(mention)
        if not query:
            return []
        async with self._db.read() as session:
            candidates = await answer_store.candidates(
                session, terms=_candidate_words(query), limit=CANDIDATES
            )
        ranked = rank(query, candidates, department=mention.department, limit=limit)
        return [r.answer for r in ranked]

    async def delete(self, answer_id: int, *, user_id: str) -> Reply:
        async with self._db.session() as session:
            answer = await answer_store.get_answer(session, answer_id=answer_id)
            if answer is None:
                raise NotFound(
                    f"There is no saved answer #{answer_id}. `/earful answers` lists them."
                )
            if answer.author != user_id and user_id not in self._admins:
                raise NotAllowed(
                    f"Answer #{answer_id} was saved by "
                    f"{mrkdwn.user(answer.author) or 'someone else'}; only they or an admin can "
                    "delete it."
                )
            await answer_store.delete_answer(session, answer_id=answer_id)
        title = mrkdwn.truncate(" ".join(mrkdwn.clean(answer.title).split()), 150)
        return text_reply(f":wastebasket: Deleted saved answer #{answer_id} *{title}*.")


def _candidate_words(query: Sequence[str]) -> list[str]:
    """The query terms worth a LIKE: every intent, and the longest (most specific) words."""
    distinct = list(dict.fromkeys(query))
    intents = [t for t in distinct if t.startswith(_INTENT_PREFIX)]
    plain = sorted((t for t in distinct if not t.startswith(_INTENT_PREFIX)), key=len, reverse=True)
    return intents + plain[:QUERY_WORDS]


async def run_command(
    command: AnswersCommand, *, db: Database, admins: Collection[str], user_id: str
) -> Reply:
    """The ``/earful answers …`` entry point for bot.command_service."""
    return await KnowledgeBase(db, admins=admins).run(command, user_id=user_id)
