"""The tiny grid study the report and retrain tests read, built once per session."""

from __future__ import annotations

import pytest

from testing.data import RealData
from testing.studies import TinyStudy, build_tiny_study


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory: pytest.TempPathFactory, real_data: RealData) -> TinyStudy:
    """Read-only: a test that changes the study works on a copy (`TinyStudy.copy_to`)."""
    return build_tiny_study(tmp_path_factory.mktemp("tiny-bs-lr-study"), real_data)
