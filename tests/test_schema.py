"""`eventfeed schema` is generated from the model and accepts the shipped records."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from eventfeed.frontmatter import read_document
from eventfeed.model import Record

from .conftest import Run

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "events").rglob("*.md"))


@pytest.fixture(scope="module")
def schema() -> dict[str, object]:
    from click.testing import CliRunner

    from eventfeed.cli import main

    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_schema_lists_every_field(schema: dict[str, object]) -> None:
    properties = schema["properties"]
    assert isinstance(properties, dict)
    assert sorted(properties) == sorted(Record.model_fields)
    assert schema["additionalProperties"] is False
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_records_validate_against_the_schema(schema: dict[str, object], path: Path) -> None:
    data = read_document(path.read_bytes()).data
    jsonschema.Draft202012Validator(schema).validate(data)


def test_schema_rejects_an_unknown_field(schema: dict[str, object]) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    errors = list(
        validator.iter_errors(
            {"title": "A", "kind": "meeting", "start": "2022-12-07", "colour": "red"}
        )
    )
    assert [e.validator for e in errors] == ["additionalProperties"]


def test_schema_command_is_stable(run: Run) -> None:
    assert run("schema").stdout == run("schema").stdout
