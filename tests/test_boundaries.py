"""The architecture's boundaries, checked in fresh interpreters."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from testing.data import REPO

FORBIDDEN = {
    "trainers": ["optuna", "hpo", "storage"],
    "trainers.loop": ["optuna", "hpo", "storage"],
    "storage": ["torch", "transformers", "trainers", "hpo"],
    "hpo.report": ["torch", "transformers"],
    "hpo.cli": ["torch", "transformers"],
    "hpo.spec": ["torch", "transformers"],
}


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_module_does_not_import(module):
    code = (
        f"import sys, {module}\n"
        f"bad = [m for m in {FORBIDDEN[module]!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{module} imports {result.stdout.strip()}"


SEPARATE = {
    "tests": {"benchmarks"},
    "benchmarks": {"tests"},
    "testing": {"tests", "benchmarks"},
    "hpo": {"testing", "tests", "benchmarks"},
    "trainers": {"testing", "tests", "benchmarks"},
    "storage": {"testing", "tests", "benchmarks"},
}


def _imported_packages(path) -> set[str]:
    """Top-level names of every absolute import in a file, wherever in it the import stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(SEPARATE))
def test_package_does_not_import_its_neighbours(package):
    """Tests and benchmarks share the `testing` package and never import each other; the
    service imports neither."""
    offenders = {
        str(p.relative_to(REPO)): sorted(_imported_packages(p) & SEPARATE[package])
        for p in (REPO / package).rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_every_benchmark_runs_as_its_own_module():
    """A benchmark (a module of `benchmarks` with a top-level `main`) is run as `python -m
    benchmarks.NAME`, as its docstring and the README say: without the `__main__` guard that
    command imports it, measures nothing and exits 0."""
    unguarded = []
    for path in sorted((REPO / "benchmarks").glob("[!_]*.py")):
        body = ast.parse(path.read_text()).body
        has_main = any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in body)
        guarded = any(isinstance(n, ast.If) and "__main__" in ast.unparse(n.test) for n in body)
        if has_main and not guarded:
            unguarded.append(path.name)
    assert unguarded == []
