"""slack-manifest.yml is what users paste into Slack: check it against Slack's own schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from tests.fakes.slack_api import slack_spec_dir

MANIFEST = Path(__file__).resolve().parents[1] / "slack-manifest.yml"
SCHEMA_DIR = slack_spec_dir() / "manifest-schema"
EXAMPLES = sorted((SCHEMA_DIR / "examples").glob("*/manifest.*.json"))


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    root = json.loads((SCHEMA_DIR / "manifest.schema.json").read_text(encoding="utf-8"))
    # The root schema $refs each versioned schema by its GitHub URL; serve those from the
    # local copies so the test runs offline and against the files we vetted.
    registry: Registry = Registry()
    for url in sorted(r for r in _refs(root) if r.startswith("https://")):
        local = SCHEMA_DIR / "schemas" / url.rsplit("/", 1)[-1]
        contents = json.loads(local.read_text(encoding="utf-8"))
        registry = registry.with_resource(
            url, Resource.from_contents(contents, default_specification=DRAFT7)
        )
    jsonschema.Draft7Validator.check_schema(root)
    return jsonschema.Draft7Validator(root, registry=registry)


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))


def _leaves(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    if not error.context:
        return [error]
    return [leaf for sub in error.context for leaf in _leaves(sub)]


def _messages(validator: jsonschema.Draft7Validator, instance: Any) -> list[str]:
    # The root schema is a oneOf over manifest versions, so the real reasons sit in the
    # branches; the deepest ones first, since they name the offending field.
    leaves = [leaf for e in validator.iter_errors(instance) for leaf in _leaves(e)]
    leaves.sort(key=lambda e: len(e.absolute_path), reverse=True)
    return list(
        dict.fromkeys(
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in leaves
        )
    )


def test_manifest_is_valid_for_slack(
    validator: jsonschema.Draft7Validator, manifest: dict[str, Any]
) -> None:
    assert _messages(validator, manifest) == []


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_validator_agrees_with_slack_examples(
    validator: jsonschema.Draft7Validator, example: Path
) -> None:
    # Slack's own valid/invalid pairs prove the validator can both pass and fail.
    instance = json.loads(example.read_text(encoding="utf-8"))
    if example.name == "manifest.valid.json":
        assert _messages(validator, instance) == []
    else:
        assert not validator.is_valid(instance)


def test_examples_cover_both_outcomes() -> None:
    names = {p.name for p in EXAMPLES}
    assert names == {"manifest.valid.json", "manifest.invalid.json"}


def test_background_color_matches_slack_pattern(manifest: dict[str, Any]) -> None:
    # The schema spells this constraint "regex", which JSON Schema ignores; apply it here.
    schema = json.loads((SCHEMA_DIR / "schemas" / "manifest.schema.1.0.0.json").read_text())
    display = schema["definitions"]["app-manifests.v1.display_information.schema"]
    pattern = display["properties"]["background_color"]["regex"]
    assert re.fullmatch(pattern, manifest["display_information"]["background_color"])


def test_all_request_urls_point_at_one_endpoint(manifest: dict[str, Any]) -> None:
    # Bolt serves commands, interactions and events on one path; a stray URL would silently
    # break one of the three in HTTP mode.
    settings = manifest["settings"]
    urls = {
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
        *(c["url"] for c in manifest["features"]["slash_commands"]),
    }
    assert urls == {"https://earful.example.com/slack/events"}


def test_command_and_events_have_what_earful_needs(manifest: dict[str, Any]) -> None:
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/earful"
    # Escaped mentions give IDs (<#C123|name>) instead of names that can change.
    assert command["should_escape"] is True
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert events == {"reaction_added", "app_home_opened"}
    # Slack refuses an event subscription without the scope that grants it.
    assert "reactions:read" in scopes
    assert {"commands", "chat:write", "chat:write.public", "files:write"} <= scopes
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
