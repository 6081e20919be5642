from __future__ import annotations

from sqlalchemy import create_engine, inspect

from storage.db import sync_url
from storage.migrate import current, upgrade


def test_migrations_reach_head_and_match_the_models(database_url: str) -> None:
    # The fixture's database was built by the migrations; running them again is a no-op.
    upgrade(database_url)
    assert current(database_url) == "0014"
    engine = create_engine(sync_url(database_url))
    try:
        inspector = inspect(engine)
        tables = set(inspector.get_table_names())
        assert {"watch", "source_state", "mention", "event", "route", "outbox"} <= tables
        assert "department_lead" in tables
        assert "reason" in {c["name"] for c in inspector.get_columns("event")}
        uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("mention")}
        assert ("origin", "external_id") in uniques
    finally:
        engine.dispose()


def test_alembic_autogenerate_finds_no_drift(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    import storage.models  # noqa: F401

    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            diff = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    assert diff == [], diff


def test_upgrade_keeps_existing_mentions(tmp_path: object) -> None:
    from pathlib import Path

    from sqlalchemy import text

    url = f"sqlite:///{Path(str(tmp_path)) / 'old.db'}"
    upgrade(url, "0001")
    engine = create_engine(sync_url(url))
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO mention (watch_name, watch_kind, source, external_id, text, "
                "found_at, matched_terms, sentiment_compound, sentiment_label, intents, "
                "department, cc, route_rule, priority, priority_reason, state, "
                "escalation_level, updated_at) VALUES ('acme', 'brand', 'hn', '1', 'acme', "
                "'2026-01-01 00:00:00', '[]', 0, 'neutral', '[]', 'support', '[]', '', 'P3', "
                "'', 'new', 0, '2026-01-01 00:00:00')"
            )
        )
    upgrade(url)
    with engine.connect() as connection:
        watches, origin = connection.execute(text("SELECT watches, origin FROM mention")).one()
    engine.dispose()
    assert watches == "[]" and origin == "hn"


def test_0006_keeps_events_and_goes_back_down(tmp_path: object) -> None:
    from pathlib import Path

    from alembic import command
    from sqlalchemy import text

    from storage.migrate import alembic_config

    url = f"sqlite:///{Path(str(tmp_path)) / 'old.db'}"
    upgrade(url, "0005")
    engine = create_engine(sync_url(url))
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO mention (watch_name, watch_kind, source, origin, external_id, text, "
                "found_at, matched_terms, watches, sentiment_compound, sentiment_label, intents, "
                "department, cc, route_rule, priority, priority_reason, state, "
                "escalation_level, updated_at) VALUES ('acme', 'brand', 'hn', 'hn', '1', 'acme', "
                "'2026-01-01 00:00:00', '[]', '[]', 0, 'neutral', '[]', 'support', '[]', '', "
                "'P3', '', 'dismissed', 0, '2026-01-01 00:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO event (mention_id, actor, action, from_state, to_state, note, "
                "created_at) VALUES (1, 'U1', 'dismiss', 'new', 'dismissed', 'spam', "
                "'2026-01-01 00:00:00')"
            )
        )
    upgrade(url, "0006")
    with engine.connect() as connection:
        row = connection.execute(text("SELECT action, note, reason FROM event")).one()
    assert tuple(row) == ("dismiss", "spam", None)
    command.downgrade(alembic_config(url), "0005")
    inspector = inspect(engine)
    assert "department_lead" not in inspector.get_table_names()
    assert "reason" not in {c["name"] for c in inspector.get_columns("event")}
    with engine.connect() as connection:
        assert connection.execute(text("SELECT note FROM event")).scalar_one() == "spam"
    engine.dispose()


def test_0011_backfills_primary_intent_and_response_times(database_url: str) -> None:
    from datetime import UTC, datetime

    from alembic import command
    from sqlalchemy import text

    from storage.migrate import alembic_config

    command.downgrade(alembic_config(database_url), "0010")
    engine = create_engine(sync_url(database_url))
    postgres = engine.dialect.name == "postgresql"

    def stamp(hour: int) -> str:
        return f"2026-01-01 {hour:02d}:00:00" + ("+00" if postgres else ".000000")

    intents = [
        '[{"intent": "complaint", "triggers": ["x"]}, {"intent": "question", "triggers": []}]',
        "[]",
    ]
    with engine.begin() as connection:
        for number, listed in enumerate(intents, start=1):
            connection.execute(
                text(
                    "INSERT INTO mention (id, watch_name, watch_kind, source, origin, "
                    "external_id, text, found_at, matched_terms, watches, sentiment_compound, "
                    "sentiment_label, intents, department, cc, route_rule, priority, "
                    "priority_reason, state, escalation_level, updated_at) VALUES (:id, "
                    "'acme', 'brand', 'hn', 'hn', :id, 'acme', :found, '[]', '[]', 0, "
                    "'neutral', :intents, 'support', '[]', '', 'P3', '', 'resolved', 0, :found)"
                ),
                {"id": number, "found": stamp(0), "intents": listed},
            )
        for hour, action, to_state in [
            (1, "claim", "claimed"),
            (2, "reroute", "new"),
            (3, "claim", "claimed"),
            (4, "resolve", "resolved"),
        ]:
            connection.execute(
                text(
                    "INSERT INTO event (mention_id, actor, action, from_state, to_state, "
                    "created_at) VALUES (1, 'U1', :action, 'new', :to_state, :at)"
                ),
                {"action": action, "to_state": to_state, "at": stamp(hour)},
            )
    engine.dispose()
    upgrade(database_url)

    async def read() -> list[tuple[object, ...]]:
        from sqlmodel import col, select

        from storage.db import Database
        from storage.models import Mention

        db = Database(database_url)
        try:
            async with db.session() as session:
                stmt = select(
                    col(Mention.primary_intent), col(Mention.claimed_at), col(Mention.resolved_at)
                ).order_by(col(Mention.id))
                return [tuple(row) for row in await session.execute(stmt)]
        finally:
            await db.dispose()

    import asyncio

    at = [datetime(2026, 1, 1, hour, tzinfo=UTC) for hour in range(5)]
    # The strongest intent; the last claim (after a reroute) and the last resolution.
    assert asyncio.run(read()) == [("complaint", at[3], at[4]), (None, None, None)]
