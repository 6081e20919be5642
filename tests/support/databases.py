"""Fresh, migrated databases for tests: SQLite always, PostgreSQL when TEST_POSTGRES_URL is set.

Each test gets its own database copied from a template migrated once per session, so tests
are isolated and still run the real Alembic migrations.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from storage.db import Database
from storage.migrate import upgrade

POSTGRES_ENV = "TEST_POSTGRES_URL"
# One template per test run: concurrent runs (developers, CI retries) must not drop each
# other's template. A run killed before its teardown leaves one behind; the next run on the
# same server clears templates whose owning process is gone.
TEMPLATE_PREFIX = "earful_test_template_"
TEMPLATE_DB = f"{TEMPLATE_PREFIX}{os.getpid()}"


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


def _admin_engine(url: str):  # type: ignore[no-untyped-def]
    return create_engine(
        make_url(url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "earful.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str | None]:
    url = postgres_url()
    if url is None:
        yield None
        return
    engine = _admin_engine(url)
    with engine.connect() as connection:
        _drop_orphaned_templates(connection)
        connection.execute(text(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{TEMPLATE_DB}"'))
    template_url = make_url(url).set(database=TEMPLATE_DB).render_as_string(hide_password=False)
    upgrade(template_url)
    yield template_url
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)'))
    engine.dispose()


def _drop_orphaned_templates(connection) -> None:  # type: ignore[no-untyped-def]
    names = connection.execute(
        text("SELECT datname FROM pg_database WHERE datname LIKE :prefix"),
        {"prefix": f"{TEMPLATE_PREFIX}%"},
    ).scalars()
    for name in list(names):
        pid = name.removeprefix(TEMPLATE_PREFIX)
        if pid.isdigit() and not _process_alive(int(pid)):
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fresh_sqlite(template: Path, tmp_path: Path) -> str:
    path = tmp_path / "earful.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@contextmanager
def _new_postgres_database(base: str, *, prefix: str, template: str | None = None) -> Iterator[str]:
    """A new database on the server of ``base`` (a copy of ``template``, or empty), dropped
    afterwards."""
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    engine = _admin_engine(base)
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(
    request: pytest.FixtureRequest,
    sqlite_template: Path,
    postgres_template: str | None,
    tmp_path: Path,
) -> Iterator[str]:
    """A fresh, migrated database URL; the test runs once per engine."""
    if request.param == "sqlite":
        yield _fresh_sqlite(sqlite_template, tmp_path)
        return
    base = postgres_url()
    if base is None or postgres_template is None:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    with _new_postgres_database(base, prefix="earful_t_", template=TEMPLATE_DB) as url:
        yield url


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database (not migrated), for tests of what migrates it."""
    base = postgres_url()
    if base is None:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    with _new_postgres_database(base, prefix="earful_e_") as url:
        yield url


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh SQLite database only, for tests whose logic does not depend on the engine."""
    return _fresh_sqlite(sqlite_template, tmp_path)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()
