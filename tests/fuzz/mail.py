"""Coverage-guided fuzzing of services.mail.parse_email (atheris, libFuzzer's engine).

    python -m tests.fuzz.mail --seconds 120

Seeded with the regression fixtures (tests/services/mail_fixtures/*.eml). Any exception
other than NotAnEmail is a crash: libFuzzer writes the input to crash-<sha1> in the folder
printed at the start and the run exits non-zero; the input then becomes a fixture there.
"""

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

import atheris

from services import mail
from tests.support.mail import MAIL_FIXTURES

atheris.instrument_all()  # the email package, charset-normalizer, py3langid: all Python code


def one_input(data: bytes) -> None:
    with contextlib.suppress(mail.NotAnEmail):
        mail.parse_email(data, "fuzz", "incoming/fuzz.eml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--max-len", type=int, default=16_384)
    args, extra = parser.parse_known_args()
    corpus = Path(tempfile.mkdtemp(prefix="fuzz-mail-"))  # grows; the seeds stay untouched
    crashes = corpus.parent / f"{corpus.name}-crashes"
    crashes.mkdir()
    for seed in sorted(MAIL_FIXTURES.glob("*.eml")):
        (corpus / seed.name).write_bytes(seed.read_bytes())
    print(f"fuzzing parse_email for {args.seconds} s, corpus {corpus}, crashes to {crashes}")
    atheris.Setup(
        [
            sys.argv[0],
            f"-max_total_time={args.seconds}",
            f"-max_len={args.max_len}",
            "-print_final_stats=1",
            "-rss_limit_mb=4096",
            f"-artifact_prefix={crashes}/",
            *extra,
            str(corpus),
        ],
        one_input,
    )
    atheris.Fuzz()


if __name__ == "__main__":
    main()
