"""bench.quality --quick end to end on a tiny data set in `postwerk dataset build`'s layout,
with the tiny BERT: both models run on the same split and the results have every figure."""

import json
import subprocess
import sys

from bench.common import QUICK_RESULTS_DIR, REPO_ROOT
from tests.support.jobs import LABELS, make_emails


def write_dataset(folder, sizes):
    for split, (count, seed) in sizes.items():
        (folder / split).mkdir(parents=True)
        lines = [json.dumps(email) for email in make_emails(count, seed)]
        (folder / split / "data.jsonl").write_text("\n".join(lines) + "\n")


def test_quick_run_compares_the_model_and_the_baseline(tiny_bert, tmp_path):
    dataset = tmp_path / "dataset"
    write_dataset(dataset, {"train": (60, 1), "validation": (12, 2), "test": (15, 3)})
    name = "quality-contract-test"
    result = subprocess.run(
        [sys.executable, "-m", "bench.quality", "--dataset", str(dataset), "--quick",
         "--compare-weighting", "--model", str(tiny_bert), "--name", name],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    path = QUICK_RESULTS_DIR / f"{name}.json"
    results = json.loads(path.read_text())
    path.unlink()
    assert set(results["models"]) == {
        "tfidf_logreg", "minilm", "postwerk_default", "minilm_unweighted"
    }  # fmt: skip
    assert results["command"].startswith("python -m bench.quality --dataset")
    assert results["splits"]["test"]["rows"] == 15
    for scores in results["models"].values():
        assert 0 <= scores["macro_f1"] <= 1 and 0 <= scores["ece"] <= 1
        assert set(scores["recall"]) == set(LABELS)
    assert results["models"]["minilm"]["temperature"] > 0
    assert results["models"]["minilm_unweighted"]["class_weighting"] == "none"
    assert "TF-IDF + LogReg" in result.stdout
    default = results["models"]["postwerk_default"]
    assert default["model"] in ("transformer", "linear")
    assert set(default["validation_macro_f1"]) == {"transformer", "linear"}
    served = max(default["validation_macro_f1"], key=default["validation_macro_f1"].get)
    assert default["model"] == served or len(set(default["validation_macro_f1"].values())) == 1
    assert "postwerk default" in result.stdout
