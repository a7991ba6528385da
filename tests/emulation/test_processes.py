"""The one way processes are stopped (emulation/processes.py): SIGTERM, a bounded wait, then
SIGKILL to what is left, including what it started meanwhile."""

import signal
import subprocess
import sys
import time

import psutil
import pytest

from emulation.processes import process_tree, stop_processes

pytestmark = pytest.mark.live  # each test starts processes to stop

# Ignores SIGTERM; on each one it starts a child and prints the child's PID.
STUBBORN = """
import signal, subprocess, sys, time
def start_a_child(*_):
    print(subprocess.Popen(["sleep", "60"]).pid, flush=True)
signal.signal(signal.SIGTERM, start_a_child)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def with_a_child(command: str) -> subprocess.Popen:
    """`sh -c command` once the child it starts runs."""
    root = subprocess.Popen(["sh", "-c", command])
    deadline = time.monotonic() + 30
    while not psutil.Process(root.pid).children():
        assert time.monotonic() < deadline, "the child did not start"
        time.sleep(0.05)
    return root


def ended(pid: int) -> bool:
    """Gone, or a zombie whose parent (the init process, once its own parent is gone) has yet
    to reap it."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_tree_ends_on_sigterm_and_a_child_started_here_keeps_its_exit_code():
    root = with_a_child("sleep 60 & wait")
    tree = process_tree(root)
    assert len(tree) == 2 and tree[0] is root

    started = time.monotonic()
    stop_processes(tree, timeout=60)
    assert time.monotonic() - started < 30, "SIGTERM ended them: no wait for the timeout"
    assert root.returncode == -signal.SIGTERM
    assert ended(tree[1].pid)
    assert process_tree(root) == []


def test_what_ignores_sigterm_is_killed_after_the_timeout_with_what_it_started_meanwhile():
    root = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, text=True)
    assert root.stdout.readline() == "ready\n"

    started = time.monotonic()
    stop_processes(process_tree(root), timeout=1)
    assert time.monotonic() - started >= 1
    assert root.returncode == -signal.SIGKILL
    assert ended(int(root.stdout.readline())), "the child started during the grace"


def test_sigterm_to_the_root_alone_and_sigkill_to_the_rest_after_the_timeout():
    root = with_a_child("sleep 60; true")  # SIGTERM ends sh; its child never hears of it
    tree = process_tree(root)

    started = time.monotonic()
    stop_processes(tree, timeout=1, sigterm=[root])
    assert time.monotonic() - started >= 1, "the child got no SIGTERM: it ran to the timeout"
    assert root.returncode == -signal.SIGTERM
    assert ended(tree[1].pid)
