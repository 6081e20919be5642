"""Replicas starting together all run ``upgrade``: on PostgreSQL they must take turns."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier

from alembic.script import ScriptDirectory

from storage.migrate import alembic_config, current, upgrade


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
