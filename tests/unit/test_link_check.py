"""`make lint`'s link check (lychee with the repository's lychee.toml) fails on a dead
relative link or anchor, passes good ones, and follows no web link."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.jobs import ROOT

pytestmark = pytest.mark.live  # runs lychee

LYCHEE = Path(sys.executable).parent / "lychee"
GOOD = """# Guide

## The `serve` command: ports

[a page](docs/page.md), [a heading there](docs/page.md#a-heading),
[one here](#the-serve-command-ports), [a folder](docs/),
[the web](https://example.invalid/not-fetched)
"""


def check_links(tmp_path: Path, readme: str) -> subprocess.CompletedProcess:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## A heading\n\n[back](../README.md)\n")
    (tmp_path / "README.md").write_text(readme)
    return subprocess.run(
        [LYCHEE, "--config", ROOT / "lychee.toml", "README.md", "docs/page.md"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_good_links_pass_and_web_links_are_not_fetched(tmp_path):
    checked = check_links(tmp_path, GOOD)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 Excluded" in checked.stdout


def test_a_dead_relative_link_fails(tmp_path):
    checked = check_links(tmp_path, GOOD + "\n[gone](docs/moved.md)\n")
    assert checked.returncode != 0
    assert "docs/moved.md" in checked.stdout


def test_a_dead_anchor_fails(tmp_path):
    checked = check_links(tmp_path, GOOD + "\n[gone](docs/page.md#renamed-heading)\n")
    assert checked.returncode != 0
    assert "page.md#renamed-heading" in checked.stdout
