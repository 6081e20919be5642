"""Replicas starting together all run ``upgrade``: on PostgreSQL they must take turns."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from storage.migrate import alembic_config, current, upgrade
from tests.support.databases import postgres_url


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    base = postgres_url()
    if base is None:
        pytest.skip("TEST_POSTGRES_URL is not set")
    name = f"earful_m_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        make_url(base).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _migrate(url: str, starting: Barrier) -> None:
    starting.wait(timeout=60)
    upgrade(url)  # a failure exits non-zero, its traceback on stderr


def test_replicas_migrating_an_empty_database_at_once_take_turns(empty_postgres: str) -> None:
    # Processes, as replicas are (Alembic keeps its migration context in a module global).
    context = multiprocessing.get_context("spawn")
    starting = context.Barrier(3)
    replicas = [context.Process(target=_migrate, args=(empty_postgres, starting)) for _ in range(3)]
    for replica in replicas:
        replica.start()
    for replica in replicas:
        replica.join(timeout=120)
    assert [replica.exitcode for replica in replicas] == [0, 0, 0]
    head = ScriptDirectory.from_config(alembic_config(empty_postgres)).get_current_head()
    assert current(empty_postgres) == head
