"""The architecture's boundaries, checked in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import REPO

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
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{module} imports {result.stdout.strip()}"
