"""The tiny grid study the report and retrain tests read, built once per session; the small
data folder and tiny spec file the edge, preflight and binding tests run the CLI on."""

from __future__ import annotations

import pytest

from testing.data import RealData
from testing.studies import TinyStudy, build_tiny_study
from tests.hpo_tests.edge_support import edge_data, edge_spec


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory: pytest.TempPathFactory, real_data: RealData) -> TinyStudy:
    """Read-only: a test that changes the study works on a copy (`TinyStudy.copy_to`)."""
    return build_tiny_study(tmp_path_factory.mktemp("tiny-bs-lr-study"), real_data)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    """A data folder of a few real UCC rows per split (edge_support.edge_data), once per module."""
    return edge_data(tmp_path_factory.mktemp("data"))


@pytest.fixture
def spec(tmp_path):
    """A tiny study spec file on `data` (edge_support.edge_spec)."""
    return edge_spec(tmp_path / "tiny.yaml")
