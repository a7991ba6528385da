"""Plugin: the suite's two layers. A test marked `live` needs a live backend, a model or a
subprocess; the others are the fast layer, which `make test-fast` runs alone.

The mark comes by itself to every test that uses one of LIVE_FIXTURES, directly or through
another fixture; a test that starts a subprocess of its own carries @pytest.mark.live. A
test without the mark that starts a process anyway fails at that moment, so a missing mark
cannot slow the fast layer down unnoticed."""

import sys

import pytest

LIVE_FIXTURES = frozenset(
    {
        "ministack_venv",  # pip installs MiniStack
        "ministack",  # the AWS backend, a subprocess
        "sagemaker_service",  # the local SageMaker service, a subprocess
        "tiny_bert",  # a model
        "trained_job",  # a training job, a subprocess
        "local_stack",  # `postwerk up`
        "dovecot",  # an IMAP server, a subprocess
    }
)
# The audit events (docs.python.org/3/library/audit_events.html) of starting a process.
STARTS_A_PROCESS = frozenset(
    {"subprocess.Popen", "os.system", "os.posix_spawn", "os.spawn", "os.exec", "os.fork",
     "os.forkpty"}
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if LIVE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.live)


class UnmarkedLiveTest(RuntimeError):
    pass


class ProcessGuard:
    """An audit hook that refuses to start a process while a test without the mark sets up
    or runs (its fixtures' teardown may stop what a live test started)."""

    def __init__(self):
        self.fast_test: str | None = None

    def __call__(self, event: str, args: tuple) -> None:
        if self.fast_test is not None and event in STARTS_A_PROCESS:
            raise UnmarkedLiveTest(
                f"{self.fast_test} starts a process ({event}: {args[:2]}) without the `live` "
                "mark: mark it @pytest.mark.live, or give it no process (tests/support/layers.py)"
            )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item):
        return (yield from self.guarding(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        return (yield from self.guarding(item))

    def guarding(self, item: pytest.Item):
        self.fast_test = None if item.get_closest_marker("live") else item.nodeid
        try:
            return (yield)
        finally:
            self.fast_test = None


def pytest_configure(config: pytest.Config) -> None:
    guard = ProcessGuard()
    sys.addaudithook(guard)  # for good: an audit hook cannot be removed
    config.pluginmanager.register(guard, "process-guard")
