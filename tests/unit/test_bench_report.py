"""docs/benchmarks.md is what `python -m bench.report` makes of bench/results/*.json, so
no figure on it is typed by hand or left behind by a newer run."""

import json
import shutil

from bench.report import BENCHMARKS, PAGE, RESULTS_DIR, render


def test_the_page_is_what_the_script_writes_from_the_results():
    assert PAGE.read_text() == render(), "docs/benchmarks.md is stale: python -m bench.report"


def test_every_results_file_has_its_section():
    reported = {
        path.name
        for benchmark in BENCHMARKS
        for pattern in benchmark.files
        for path in RESULTS_DIR.glob(pattern)
    }
    assert reported == {path.name for path in RESULTS_DIR.glob("*.json")}


def test_a_new_figure_in_a_results_file_shows_on_the_page(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(RESULTS_DIR, results)
    pipeline = json.loads((results / "pipeline.json").read_text())
    pipeline["pipeline_emails_per_second"] = 123.456
    (results / "pipeline.json").write_text(json.dumps(pipeline))
    assert "| 123.5 |" in render(results)
    assert "| 123.5 |" not in render()


def test_serving_figures_of_each_processor_family_have_rows_of_their_own(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(RESULTS_DIR, results)
    other = json.loads((results / "serving-intel.json").read_text())
    other["machine"] |= {"cpu_model": "Neoverse-V2", "cpu_vendor": "Graviton"}
    (results / "serving-graviton.json").write_text(json.dumps(other))
    page = render(results)
    assert "| Graviton | short texts (Banking77 test) |" in page
    assert "| Intel | short texts (Banking77 test) |" in page
    assert "| Graviton | short texts (Banking77 test) |" not in render()
