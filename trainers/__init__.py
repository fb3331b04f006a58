"""Fine-tuning of transformer text classifiers, with no knowledge of Optuna.

`train_and_evaluate(config, reporter)` is the whole interface; a Reporter gets one call per
epoch and answers whether to stop.
"""

from trainers.config import DataConfig, Hyperparams, ModelConfig, TrainConfig
from trainers.errors import DataError, ModelNotFoundError, TrainerError
from trainers.reporting import NullReporter, PrintReporter, Reporter

__all__ = [
    "DataConfig",
    "DataError",
    "Hyperparams",
    "ModelConfig",
    "ModelNotFoundError",
    "NullReporter",
    "PrintReporter",
    "Reporter",
    "TrainConfig",
    "TrainerError",
    "train_and_evaluate",
]


def train_and_evaluate(config, reporter=None, keep_model=False):
    """Imported lazily so that reading configs never pays for torch."""
    from trainers.loop import train_and_evaluate as run

    return run(config, reporter, keep_model)
