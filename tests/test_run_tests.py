"""scripts/run_tests.py: "no tests collected" fails the suite unless tests were picked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "run_tests.py"


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    return tmp_path


def test_a_suite_with_no_tests_fails(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    result = run(tmp_path)
    assert result.returncode == 5
    assert "pytest collected no tests at all: the suite is broken." in result.stderr


def test_a_filter_that_matches_nothing_is_not_a_failure(project: Path) -> None:
    result = run(project, "-k", "nothing_is_called_this")
    assert result.returncode == 0
    assert "pytest collected no tests for this selection: nothing was checked." in result.stderr


def test_a_failing_test_fails_and_a_passing_one_passes(project: Path) -> None:
    assert run(project).returncode == 0
    (project / "test_two.py").write_text("def test_two():\n    assert 1 + 1 == 3\n")
    assert run(project).returncode == 1
