"""After the study: the best configuration retrained and tested once, every trial's test
scores on request, and predictions of the saved model."""

from hpo.best.predict import predict
from hpo.best.retrain import retrain_best
from hpo.best.score import score_trials

__all__ = ["predict", "retrain_best", "score_trials"]
