from __future__ import annotations

from sqlalchemy import create_engine, inspect

from storage.db import sync_url
from storage.migrate import current, upgrade


def test_migrations_reach_head_and_match_the_models(database_url: str) -> None:
    # The fixture's database was built by the migrations; running them again is a no-op.
    upgrade(database_url)
    assert current(database_url) == "0004"
    engine = create_engine(sync_url(database_url))
    try:
        inspector = inspect(engine)
        tables = set(inspector.get_table_names())
        assert {"watch", "source_state", "mention", "event", "route", "outbox"} <= tables
        uniques = {
            tuple(u["column_names"]) for u in inspector.get_unique_constraints("mention")
        }
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
