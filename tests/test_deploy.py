"""The deployment files agree with the code: docker-compose.yml, deploy/nginx.conf, Dockerfile.

No Docker daemon runs the tests, so this is what can be checked without one: the compose file
parses, names only settings Earful knows, wires the replicas to the PostgreSQL service and the
load balancer to the replicas' port, and the image runs unprivileged with a health check.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from bot.jobs import JobId
from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


def known_variables() -> set[str]:
    names = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif alias is not None:
            names.update(str(choice) for choice in getattr(alias, "choices", ()))
    return names


def test_the_replicas_only_set_settings_earful_reads(compose: dict[str, Any]) -> None:
    earful = compose["services"]["earful"]
    environment = earful["environment"]
    unknown = set(environment) - known_variables()
    assert not unknown, f"not Earful settings: {sorted(unknown)}"
    assert earful["deploy"]["replicas"] >= 2
    assert earful["env_file"] == ".env"


def test_the_replicas_share_the_postgres_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    postgres = services["postgres"]["environment"]
    url = make_url(services["earful"]["environment"]["DATABASE_URL"])
    assert url.get_backend_name() == "postgresql"
    assert url.host == "postgres" and url.port == 5432
    assert url.database == postgres["POSTGRES_DB"] and url.username == postgres["POSTGRES_USER"]
    assert services["earful"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])


def test_the_load_balancer_reaches_every_replica_on_its_port(compose: dict[str, Any]) -> None:
    services = compose["services"]
    port = services["earful"]["environment"]["PORT"]
    [mount] = services["nginx"]["volumes"]
    source, target, _ = mount.split(":")
    conf = (ROOT / source).read_text()
    assert target == "/etc/nginx/conf.d/default.conf"
    assert re.search(rf"server earful:{port} resolve\b", conf), "upstream is not the replicas"
    assert "zone earful" in conf  # `resolve` needs a shared-memory zone
    assert "location = /slack/events" in conf and "location = /healthz" in conf
    assert "non_idempotent" not in conf  # a POST already sent is never replayed elsewhere
    # `resolve` in open-source nginx needs 1.27.3 or later.
    version = services["nginx"]["image"].split(":")[1].split("-")[0]
    assert tuple(int(part) for part in version.split(".")) >= (1, 27, 3)
    assert "ports" not in services["earful"]  # Slack comes in through nginx only


def test_the_image_runs_unprivileged_with_a_health_check() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    users = re.findall(r"^USER (\S+)", final_stage, re.MULTILINE)
    assert users and users[-1] not in {"root", "0", "0:0"}
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", final_stage, re.MULTILINE)
    assert 'CMD ["earful", "run"]' in final_stage  # exec form: SIGTERM reaches Earful


def test_the_documented_job_names_are_the_real_ones() -> None:
    readme = (ROOT / "README.md").read_text()
    for job in JobId:
        assert f"`{job.value}`" in readme, job
