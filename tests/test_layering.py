"""The dependency direction tvm_ledg -> cost_model -> targets holds in the source."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "cost_model": {"tvm", "tvm_ffi", "tvm_ledg"},
    "targets": {"tvm", "tvm_ffi", "tvm_ledg", "cost_model", "torch"},
}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_upward(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources found under {package}/"
    offenders = {
        str(f.relative_to(ROOT)): sorted(_imported_roots(f) & FORBIDDEN[package]) for f in files
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"{package} must not import {sorted(FORBIDDEN[package])}: {offenders}"


def test_only_the_compat_module_imports_tvm():
    importers = [
        str(f.relative_to(ROOT))
        for f in sorted((ROOT / "tvm_ledg").rglob("*.py"))
        if "tvm" in _imported_roots(f) and f.name != "_tvm.py"
    ]
    assert not importers, f"import TVM through tvm_ledg/_tvm.py only: {importers}"
