"""The GitHub Actions workflow: valid for actionlint, and doing what the README says."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "publish.yml"


def actionlint() -> str | None:
    beside = Path(sys.executable).parent / "actionlint"
    return str(beside) if beside.exists() else shutil.which("actionlint")


def load() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_actionlint_accepts_the_workflow() -> None:
    program = actionlint()
    if program is None:
        if os.environ.get("CI"):
            pytest.fail("actionlint is missing; it comes with the test extras")
        pytest.skip("actionlint is not installed (pip install -e '.[test]')")
    result = subprocess.run(
        [program, "-no-color", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_would_catch_a_mistake(tmp_path: Path) -> None:
    program = actionlint()
    if program is None:
        if os.environ.get("CI"):
            pytest.fail("actionlint is missing; it comes with the test extras")
        pytest.skip("actionlint is not installed")
    broken = tmp_path / "broken.yml"
    broken.write_text(
        WORKFLOW.read_text(encoding="utf-8").replace("runs-on: ubuntu-latest", "runs-on: [")
    )
    result = subprocess.run([program, "-no-color", str(broken)], capture_output=True, timeout=120)
    assert result.returncode == 1


def runs(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def uses(job: dict[str, Any]) -> list[str]:
    return [step["uses"].split("@")[0] for step in job["steps"] if "uses" in step]


def test_pull_requests_are_checked_and_tested() -> None:
    data = load()
    triggers = data[True]  # YAML 1.1 reads the key "on" as true
    assert set(triggers) == {"pull_request", "push", "workflow_dispatch"}
    assert triggers["push"] == {"branches": ["main"]}
    assert data["permissions"] == {"contents": "read"}
    check = data["jobs"]["check"]
    assert check["if"] == "github.event_name == 'pull_request'"
    commands = runs(check)
    assert "/tmp/eventfeed/bin/eventfeed check --format github" in commands
    assert ".ci/run" in commands  # which ends with: python3 dev.py test
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("python3 dev.py test")


def test_main_is_verified_and_deployed_to_pages() -> None:
    jobs = load()["jobs"]
    build, deploy = jobs["build"], jobs["deploy"]
    assert "pull_request" in build["if"]
    assert "refs/heads/main" in build["if"]
    assert "eventfeed build --check" in runs(build)
    assert uses(build)[-2:] == ["actions/configure-pages", "actions/upload-pages-artifact"]
    assert build["steps"][-1]["with"] == {"path": "out"}
    assert deploy["needs"] == "build"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert uses(deploy) == ["actions/deploy-pages"]
    assert deploy["environment"]["url"] == "${{ steps.deployment.outputs.page_url }}"
