"""What the model reads: the share of its first 128 tokens that is the sender's text.

    python -m bench.quotes [--before REV]

The model reads the subject and body (model.data.email_text) cut to max_length tokens of the
bundled MiniLM's tokenizer. For each e-mail, each token among the first 128 (the two special
ones left out) counts as the sender's when the line it stands on is a line of the sender's
text: the subject, and the lines of the expected text of the fixtures in
tests/services/mail_fixtures/forwards (forwards and replies of each client, with their
.expected.txt) and replies (reply bodies with theirs). The 42 bundled samples
(examples/emails/) have no quotes or forwards: their reference is what the rules before gave
(a greeting, the text, no closing), so their row shows whether the new rules change them.

Three ways of reading each e-mail: no stripping at all ("raw": the decoded body as it came,
HTML history markup kept), the rules before (services/quotes.py at --before, default main,
read with `git show`), and the rules now. Besides the share, the table gives the sender's
tokens read (on average) and how many e-mails come out exactly as expected.
"""

import importlib.util
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from types import ModuleType

from bench.common import REPO_ROOT, base_parser, finish, print_table
from model.data import email_text
from services import mail
from services.quotes import Stripped, strip, strip_html_history

MAX_LENGTH = 128  # model/hyperparameters.py's default
FIXTURES = REPO_ROOT / "tests" / "services" / "mail_fixtures"
EXAMPLES = REPO_ROOT / "examples" / "emails"

Sample = tuple[str, bytes, str | None]  # name, raw e-mail, expected text (None: the rules before)


def samples() -> dict[str, list[Sample]]:
    forwards = [
        (path.stem, path.read_bytes(), path.with_suffix(".expected.txt").read_text().strip())
        for path in sorted((FIXTURES / "forwards").glob("*.eml"))
    ]
    replies = [
        (path.stem, reply_email(path.read_text()), expected(path))
        for path in sorted((FIXTURES / "replies").glob("*.txt"))
        if ".expected" not in path.name
    ]
    bundled = [(path.stem, path.read_bytes(), None) for path in sorted(EXAMPLES.glob("*.eml"))]
    return {"forwards (fixtures)": forwards, "replies (fixtures)": replies, "bundled": bundled}


def expected(path: Path) -> str:
    return path.with_suffix(".expected.txt").read_text().strip()


def reply_email(body: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = "kunde@example.de", "service@example.com"
    message["Subject"], message["Message-ID"] = "Re: Rechnung", "<r@example.de>"
    message.set_content(body)
    return message.as_bytes()


def rules_at(revision: str) -> ModuleType | None:
    """services/quotes.py as it was at a revision (None when git cannot show it)."""
    found = subprocess.run(
        ["git", "show", f"{revision}:services/quotes.py"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode:
        return None
    path = Path(tempfile.mkdtemp()) / "quotes_before.py"
    path.write_text(found.stdout)
    spec = importlib.util.spec_from_file_location("quotes_before", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


Rules = tuple[Callable[[str, str], Stripped], Callable[[object], None]]


def variants(before: ModuleType | None) -> dict[str, Rules]:
    found: dict[str, Rules] = {
        "raw": (lambda text, subject: Stripped(text, False), lambda tree: None),
    }
    if before is not None:
        old_text = before.strip_history
        found["before"] = (
            lambda text, subject: Stripped(old_text(text), False),
            before.strip_html_history,
        )
    found["now"] = (strip, strip_html_history)
    return found


@contextmanager
def reading(rules: Rules) -> Iterator[None]:
    saved = mail.strip, mail.strip_html_history
    mail.strip, mail.strip_html_history = rules  # type: ignore[assignment]
    try:
        yield
    finally:
        mail.strip, mail.strip_html_history = saved


def sender_tokens(tokenizer, subject: str, body: str, reference: str) -> tuple[int, int]:
    """(the sender's tokens, all tokens) among the first MAX_LENGTH the model reads."""
    text = email_text(subject, body)
    own = {line.strip() for line in f"{subject}\n{reference}".split("\n") if line.strip()}
    encoded = tokenizer(text, truncation=True, max_length=MAX_LENGTH, return_offsets_mapping=True)
    starts = [0]
    for line in text.split("\n"):
        starts.append(starts[-1] + len(line) + 1)
    lines = text.split("\n")
    mine = total = 0
    line_at = 0
    for start, end in encoded["offset_mapping"]:
        if start == end:  # [CLS], [SEP]
            continue
        while starts[line_at + 1] <= start:
            line_at += 1
        total += 1
        mine += lines[line_at].strip() in own
    return mine, total


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--before", default="main", help="git revision of the rules before")
    args = parser.parse_args()
    from transformers import AutoTokenizer

    from model.hyperparameters import bundled_model_path

    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path())
    before = rules_at(args.before)
    if before is None:
        print(f"no services/quotes.py at {args.before}: no 'before' column", file=sys.stderr)
    ways = variants(before)
    sets = samples()
    references: dict[str, str] = {}
    if "before" in ways:
        with reading(ways["before"]):
            for name, raw, _ in sets["bundled"]:
                references[name] = mail.parse_email(raw, "bench", name).body_text
    rows, results = [], {}
    for set_name, found in sets.items():
        if set_name == "bundled" and not references:
            continue
        figures = {}
        for way, rules in ways.items():
            shares, read, exact = [], [], 0
            with reading(rules):
                for name, raw, wanted in found:
                    record = mail.parse_email(raw, "bench", name)
                    reference = wanted if wanted is not None else references[name]
                    mine, total = sender_tokens(
                        tokenizer, record.subject, record.body_text, reference
                    )
                    shares.append(mine / total if total else 0.0)
                    read.append(mine)
                    exact += record.body_text == reference
            figures[way] = {
                "sender_share": statistics.mean(shares),
                "sender_tokens_read": statistics.mean(read),
                "exact": exact,
            }
        results[set_name] = {"emails": len(found), **figures}
        rows.append(
            [
                set_name,
                len(found),
                *(f"{100 * figures[way]['sender_share']:.1f} %" for way in ways),
                *(f"{figures[way]['sender_tokens_read']:.1f}" for way in ways),
                *(f"{figures[way]['exact']}/{len(found)}" for way in ways),
            ]
        )
    print_table(
        f"the sender's share of the first {MAX_LENGTH} tokens (before = {args.before})",
        [
            "samples",
            "e-mails",
            *(f"share {way}" for way in ways),
            *(f"sender tokens {way}" for way in ways),
            *(f"exact {way}" for way in ways),
        ],
        rows,
    )
    finish("quotes", {"max_length": MAX_LENGTH, "before": args.before, "sets": results}, False)


if __name__ == "__main__":
    main()
