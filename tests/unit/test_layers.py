"""The fast layer stays fast (tests/support/layers.py): a test without the `live` mark that
starts a process fails, and a test that uses a fixture which starts something is marked."""

import pytest

from tests.support.jobs import ROOT

TESTS = """
import subprocess
import sys

import pytest

@pytest.fixture
def ministack():  # a name from LIVE_FIXTURES
    return None

def test_unmarked():
    subprocess.run([sys.executable, "-c", "pass"], check=True)

@pytest.mark.live
def test_marked():
    subprocess.run([sys.executable, "-c", "pass"], check=True)

def test_with_a_live_fixture(ministack):
    subprocess.run([sys.executable, "-c", "pass"], check=True)
"""


@pytest.mark.live  # pytest in a subprocess: the guard is an audit hook for good
def test_an_unmarked_test_that_starts_a_process_fails_and_a_marked_one_may(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest('pytest_plugins = ["tests.support.layers"]')
    pytester.makeini("[pytest]\nmarkers =\n    live: as in pyproject.toml\n")
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["*test_unmarked starts a process (subprocess.Popen: *) without the `live` mark*"]
    )
    deselected = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-m", "not live")
    deselected.assert_outcomes(failed=1, deselected=2)
