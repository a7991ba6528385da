"""The rules of the layout, checked rather than kept by discipline. docs/architecture.md
section 1: what runs on AWS (services/ in Lambda, model/ in the SageMaker container) never
imports the local-only code (emulation/, postwerk/), and the two never import each other. And
the tests share code only through tests/support/: no test module imports another, or a
conftest."""

import ast

import pytest

from tests.support.jobs import ROOT

FORBIDDEN = {
    "services": {"emulation", "postwerk", "model"},
    "model": {"emulation", "postwerk", "services"},
}
# The one exception: the monitor's calibration error is training's own (model/calibration.py,
# numpy only), which `postwerk deploy` packages with the functions (postwerk/deploy.py).
ALLOWED = {"services": "model.calibration"}


def imported_modules(path) -> set[str]:
    """Every module an import names: `from a.b import c` names a.b and a.b.c (c may be a
    module); a relative import keeps its leading dots."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            joiner = "." if node.module else ""
            names |= {module} | {f"{module}{joiner}{alias.name}" for alias in node.names}
    return names


def imported_packages(path, allowed: str = "") -> set[str]:
    """The top-level packages imported, less the module `allowed` (and what it holds)."""
    return {
        name.split(".")[0]
        for name in imported_modules(path)
        if not name.startswith(".") and not (allowed and f"{name}.".startswith(f"{allowed}."))
    }


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_code_that_runs_on_aws_imports_no_local_only_code(package):
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            imported_packages(path, ALLOWED.get(package, "")) & FORBIDDEN[package]
        )
        for path in (ROOT / package).rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_check_sees_an_import_where_it_is(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from emulation.processes import HOST\n")
    assert "emulation" in imported_packages(module)


def test_only_the_allowed_module_is_let_through(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from model.calibration import softmax\nfrom model.data import encode\n")
    assert imported_packages(module, "model.calibration") == {"model"}, "model.data is not"
    module.write_text("from model.calibration import softmax\nimport model.calibration\n")
    assert imported_packages(module, "model.calibration") == set()


def borrowed_from_other_tests(path) -> list[str]:
    """What a file imports from tests/ outside tests/support/ (or from a neighbour)."""
    return sorted(name for name in imported_modules(path) if borrowed(name))


def borrowed(name: str) -> bool:
    relative = name.startswith(".") and name.strip(".") != ""
    support = name == "tests.support" or name.startswith("tests.support.")
    return relative or (name.startswith("tests.") and not support)


def test_tests_share_code_only_through_the_support_package():
    offenders = {
        str(path.relative_to(ROOT)): borrowed_from_other_tests(path)
        for path in (ROOT / "tests").rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_check_sees_a_test_module_or_a_conftest_imported(tmp_path):
    module = tmp_path / "test_m.py"
    module.write_text(
        "from tests.services import test_feedback\n"
        "from tests.e2e.conftest import browser\n"
        "from . import test_other\n"
        "from tests.support.jobs import ROOT\n"
    )
    assert borrowed_from_other_tests(module) == [
        ".test_other",
        "tests.e2e.conftest",
        "tests.e2e.conftest.browser",
        "tests.services",
        "tests.services.test_feedback",
    ]
