"""The one rule of the layout (docs/architecture.md 1), checked rather than kept by discipline:
what runs on AWS (services/ in Lambda, model/ in the SageMaker container) never imports the
local-only code (emulation/, postwerk/), and the two never import each other."""

import ast

import pytest

from tests.jobs import ROOT

FORBIDDEN = {
    "services": {"emulation", "postwerk", "model"},
    "model": {"emulation", "postwerk", "services"},
}


def imported_packages(path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_code_that_runs_on_aws_imports_no_local_only_code(package):
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_check_sees_an_import_where_it_is(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from emulation.processes import HOST\n")
    assert "emulation" in imported_packages(module)
