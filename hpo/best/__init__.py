"""After the study: the best configuration retrained and tested once, every trial's test
scores on request, and predictions of the saved model.

Imported lazily: `hpo predict` needs neither Optuna nor the report code that retraining uses,
and on an ONNX variant not even torch, so it starts in a fraction of the time.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "predict": "hpo.best.predict",
    "retrain_best": "hpo.best.retrain",
    "score_trials": "hpo.best.score",
}

__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = (
        value  # importing hpo.best.predict set the attribute to the module: the function wins, as before
    )
    return value
