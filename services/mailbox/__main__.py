"""`python -m services.mailbox`: the mailbox door in the foreground, until SIGTERM or
Ctrl-C (what `make up` runs locally); `--once`: one fetch of every mailbox, then exit (1
when a fetch failed). The buckets come from POSTWERK_RAW_BUCKET and
POSTWERK_ARTIFACTS_BUCKET, the secrets from the references in each mailbox's configuration.
"""

import argparse
import signal
import sys
import threading
import time

from services.mailbox.door import Buckets, fetch_all
from services.mailbox.watch import watch
from services.settings import FunctionSettings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--once", action="store_true", help="one fetch of every mailbox")
    parser.add_argument("--seconds", type=float, default=600, help="--once: the time it has")
    args = parser.parse_args()
    settings = FunctionSettings()
    buckets = Buckets(raw=settings.raw_bucket, artifacts=settings.artifacts_bucket)
    if args.once:
        fetched = fetch_all(buckets, time.monotonic() + args.seconds)
        return 1 if any(health.last_error for _, health in fetched.values()) else 0
    stopping = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stopping.set())
    watch(buckets, stopping)
    return 0


if __name__ == "__main__":
    sys.exit(main())
