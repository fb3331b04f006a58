"""Every complete trial's test scores, for specs that reproduce the classic tables
(`test_scores: true`). Kept as study attributes (finished trials are read-only) that only the
report reads: test scores never go back into the sampler."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from hpo import stored
from hpo.best.retrain import evaluate_test, retrain_config, show, train
from hpo.errors import HpoError
from hpo.report.read import require_same_data
from hpo.spec import StudySpec


def score_trials(study: optuna.Study, spec: StudySpec, data_dir: Path) -> list[int]:
    """Retrain each complete trial that has no test scores yet and keep its test scores as a
    study attribute (finished trials are read-only). Returns the trial numbers scored."""
    if not spec.test_scores:
        raise HpoError(
            f"study {spec.name}: the spec has test_scores: false; set it to true to score every trial on test"
        )
    require_same_data(study, spec, data_dir)
    done = set(stored.test_scores_of(study.user_attrs))
    scored = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.number in done:
            continue
        config = retrain_config(spec, trial, data_dir)
        trained = train(config)
        evaluation, _, _ = evaluate_test(trained.best, config, n_resamples=0)
        scores = flat_test_scores(evaluation["test"], config.task)
        study.set_user_attr(stored.test_scores_key(trial.number), stored.json_safe(scores))
        scored.append(trial.number)
        print(
            f"trial {trial.number}: test {spec.objective.metric} = {show(scores.get(spec.objective.metric))}",
            flush=True,
        )
    return scored


def flat_test_scores(test: dict, task: str) -> dict[str, float]:
    """Test scores under the validation metrics' names; "tuned_macro_f1" is macro F1 at the
    thresholds chosen on validation (not re-tuned on test)."""
    default = {k: v for k, v in test["default"].items() if not isinstance(v, (dict, list))}
    if task == "multi_label":
        default["tuned_macro_f1"] = test["tuned"]["macro_f1"]
    return default
