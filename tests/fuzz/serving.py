"""Fuzz the serving container against its own OpenAPI schema (schemathesis).

    python -m tests.fuzz.serving --seconds 120

Builds a tiny untrained BERT model folder, starts `python -m model serve` on it, and runs
schemathesis (positive and negative cases, examples, coverage and fuzzing phases) for the
time budget with the one check that matters here: no 5xx. Prints the number of cases and
every 5xx, and exits non-zero on any (or on an error such as a dropped connection). A crash
found here becomes a regression test in tests/contract/test_serving_hostile.py.

This module is also schemathesis's hook module (SCHEMATHESIS_HOOKS): it teaches it to write
JSON Lines bodies.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import schemathesis

from model.serving.requests import JSONLINES_TYPES
from tests.support.jobs import LABELS, ROOT, TOPICS, serving


@schemathesis.serializer(*JSONLINES_TYPES)
def json_lines(context, value) -> bytes:
    """A list is one instance per line; anything else (negative cases) one line."""
    items = value if isinstance(value, list) else [value]
    return "".join(json.dumps(item) + "\n" for item in items).encode()


def build_tiny_model(model_dir: Path) -> None:
    """An untrained 2-layer BERT over the templates' words: loads like a trained one."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    texts = [text for pairs in TOPICS.values() for pair in pairs for text in pair]
    words = {word for text in texts for word in text.split()}
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words)]
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(vocabulary)})
    config = BertConfig(
        vocab_size=len(vocabulary),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    info = {"name": "fuzz-tiny-bert", "version": "fuzz", "max_length": 64}
    (model_dir / "model_info.json").write_text(json.dumps(info))


def run_schemathesis(url: str, seconds: int, report: Path) -> None:
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json"),
        *("--checks", "not_a_server_error"),
        *("--phases", "examples,coverage,fuzzing"),
        *("--max-time", str(seconds)),
        *("--request-timeout", "30"),
        *("--workers", "4"),
        *("--report", "json", "--report-json-path", str(report)),
    ]
    environment = os.environ | {"SCHEMATHESIS_HOOKS": "tests.fuzz.serving", "PYTHONPATH": str(ROOT)}
    # Run in the work folder: schemathesis keeps its example database where it runs.
    subprocess.run(command, cwd=report.parent, env=environment, check=False)  # the report tells


def summarize(report: dict) -> bool:
    """Print the case count and every 5xx or error; True when there were none."""
    cases = report["test_cases"]
    print(f"serving fuzz: {cases['generated']} cases, {cases['with_failures']} with a 5xx")
    for failure in report["failures"]:
        print(f"  5xx: {failure['title']} x{failure['count']} in {failure['operations']}")
    for error in report["errors"]:
        print(f"  error: {error['title']} x{error['count']}")
    return not report["failures"] and not report["errors"] and cases["generated"] > 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=120, help="time budget for fuzzing")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="postwerk-fuzz-") as work:
        base = Path(work)
        build_tiny_model(base / "model")
        with serving(base) as url:
            run_schemathesis(url, arguments.seconds, base / "report.json")
        report = json.loads((base / "report.json").read_text())
    return 0 if summarize(report) else 1


if __name__ == "__main__":
    sys.exit(main())
