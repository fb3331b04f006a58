"""Retrain a study's best configuration, save it, and evaluate it once on test.

The best trial's parameters are replayed through the spec's search space (FixedTrial) and
trained up to the best trial's best epoch. Per-label thresholds are chosen on validation; only
then is the test split read, once, and scored at 0.5 and at those thresholds.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo import stored
from hpo.best.members import MEMBERS_DIR, member_config, obtain
from hpo.errors import HpoError
from hpo.objectives import chosen_trial, primary_value
from hpo.report.baseline import collapse_warnings, majority_baseline
from hpo.report.best_tables import best_model_tables
from hpo.report.read import require_same_data
from hpo.report.summary import StudySummary
from hpo.search_space import replay
from hpo.spec import BlendSpec, StudySpec
from hpo.stored import BestMetrics, BlendRecord, EnsembleMember, weights_key
from trainers.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class Trained:
    """A retrained configuration with its validation-chosen thresholds, ready to predict."""

    config: TrainConfig
    best: Any  # trainers.checkpoint.BestModel
    val_metrics: dict
    thresholds: np.ndarray | None
    val_probs: np.ndarray  # what the thresholds were chosen on
    members: list[EnsembleMember] = field(default_factory=list)  # empty: one model
    blend: BlendRecord | None = None


def retrain_config(spec: StudySpec, trial: FrozenTrial, data_dir: Path) -> TrainConfig:
    """The trial's configuration and seed, stopped after its best epoch. The learning-rate
    schedule still spans the trial's epochs: a schedule squeezed into fewer epochs trains a
    different model than the one the trial scored (on ucc-imbalance, val macro ROC-AUC 0.736
    instead of the trial's 0.763 after epoch 1 of 3)."""
    params = replay(spec, trial.params)
    best_epoch = trial.user_attrs.get(stored.BEST_EPOCH)
    stop = {"stop_after_epochs": int(best_epoch)} if best_epoch else {}
    config = spec.train_config(data_dir, {**params, **stop}, seed=spec.sampler.seed + trial.number)
    config = config.model_copy(
        update={"measure_deployed": False}
    )  # the trial measured that; `hpo compress` builds variants
    if config.data.test_path is None:
        raise HpoError(
            f"study {spec.name}: data.test is not set; retraining evaluates on a test split"
        )
    return config


def train(config: TrainConfig, cross_fit_folds: int | None = None) -> Trained:
    """Train on train; choose each label's threshold on the best epoch's validation
    predictions, or, with `cross_fit_folds`, on out-of-fold predictions over train + val
    (trainers.crossfit)."""
    from trainers.loop import train_and_evaluate
    from trainers.reporting import PrintReporter

    result = train_and_evaluate(config, PrintReporter(config.monitor), keep_model=True)
    if cross_fit_folds and config.task == "multi_label":
        from trainers.crossfit import crossfit_thresholds

        thresholds = crossfit_thresholds(config, cross_fit_folds, seed=config.hyper.seed)
    else:
        thresholds = _val_thresholds(config, _val_labels(config), result.val_probs)
    extractor = result.extras.get("feature_extractor")
    return _trained(config, result.model, result.tokenizer, extractor, result.best_metrics, thresholds, result.val_probs)  # fmt: skip


def train_ensemble(config: TrainConfig, members: list[tuple[int, TrainConfig]]) -> Trained:
    """An ensemble of `members` ((trial, configuration), the chosen trial's first; hpo.best.members:
    saved ones reused, missing ones trained), delivered as their mean probability; thresholds
    are chosen on that mean's validation predictions. Of several trials' members it keeps those
    of the first j trials, j chosen on validation: a weaker configuration's seeds can dilute the
    mean (ucc-best: 3 models of the chosen trial 0.7832 val macro ROC-AUC, all 9 0.7777)."""
    from trainers.ensemble import SeedEnsemble

    got = []
    for k, (_, member) in enumerate(members):
        log.info("ensemble member %d of %d: seed %d", k + 1, len(members), member.hyper.seed)
        got.append(obtain(member))
    log.info("%d of %d members reused", sum(m.reused for m in got), len(got))
    trials = [trial for trial, _ in members]  # grouped: each trial's seeds together
    y = _val_labels(config)
    keep, probs, metrics, n = 0, None, None, 0
    for j, (_, seeds) in enumerate(groupby(trials)):
        n += len(list(seeds))  # the members of the first j + 1 trials
        mean, scored = _mean_metrics(config, got[:n], y)
        log.info("members of the first %d trial(s) (%d models): validation %s %.4f",
                 j + 1, n, config.monitor, scored["monitor_value"])  # fmt: skip
        if metrics is None or config.improves(scored["monitor_value"], metrics["monitor_value"]):
            keep, probs, metrics = n, mean, scored
    got = got[:keep]
    model = SeedEnsemble([m.model for m in got], config.task)
    thresholds = _val_thresholds(config, y, probs)
    trained = _trained(
        config, model, got[0].tokenizer, got[0].extractor, metrics, thresholds, probs
    )
    trained.members = [EnsembleMember(trial=t, seed=c.hyper.seed) for t, c in members[:keep]]
    return trained


def _val_labels(config: TrainConfig) -> np.ndarray:
    return _val_split(config)[1]


def _val_split(config: TrainConfig) -> tuple[list[str], np.ndarray]:
    """Validation texts and labels (multi-label: 0/1 integers)."""
    from trainers.data import load_split

    val = load_split(config.data.val_path, config.data, config.task)
    labels = val.labels.astype(np.int64) if config.task == "multi_label" else val.labels
    return val.texts, labels


def _scored(config: TrainConfig, y: np.ndarray, probs: np.ndarray) -> dict:
    """Validation metrics of `probs`, the monitored one also as `monitor_value`."""
    from trainers.metrics import compute_metrics

    metrics = compute_metrics(config.task, y, probs, config.data.label_names)
    metrics["monitor_value"] = metrics[config.monitor]
    return metrics


def _mean_metrics(config: TrainConfig, got: list, y: np.ndarray) -> tuple[np.ndarray, dict]:
    """The members' mean validation probability and its metrics."""
    probs = np.mean([m.val_probs for m in got], axis=0)
    metrics = _scored(config, y, probs)
    metrics["member_values"] = [m.best_value for m in got]
    metrics["epoch"] = max(m.best_epoch for m in got)
    return probs, metrics


def _val_thresholds(
    config: TrainConfig, y: np.ndarray, val_probs: np.ndarray
) -> np.ndarray | None:
    """Multi-label: each label's threshold chosen on the validation probabilities, at the
    best expected F1 under Platt calibration (trainers.thresholds)."""
    from trainers.thresholds import calibrated_f1_thresholds

    return calibrated_f1_thresholds(y, val_probs) if config.task == "multi_label" else None


def _trained(config: TrainConfig, model, tokenizer, extractor, val_metrics, thresholds, val_probs) -> Trained:  # fmt: skip
    from trainers.checkpoint import BestModel, LabelInfo

    best = BestModel(model, tokenizer, LabelInfo.of(config), thresholds, extractor)
    return Trained(config, best, val_metrics, thresholds, np.asarray(val_probs))


def with_blend(trained: Trained, settings: BlendSpec) -> Trained:
    """`trained` mixed with side models at the weights validation prefers (hpo.best.blend),
    its thresholds and validation metrics those of the mix."""
    from hpo.best.blend import fit_blend

    config = trained.config
    texts, y = _val_split(config)
    blend, probs, record = fit_blend(config, settings, texts, y, trained.val_probs)
    trained.blend = record
    if blend is None:
        return trained
    metrics = _scored(config, y, probs)
    for key in ("member_values", "epoch"):  # what the unblended metrics said of the training
        if key in trained.val_metrics:
            metrics[key] = trained.val_metrics[key]
    trained.thresholds = _val_thresholds(config, y, probs)
    trained.best = trained.best._replace(thresholds=trained.thresholds, blend=blend)
    trained.val_metrics, trained.val_probs = metrics, probs
    return trained


def ensemble_members(
    study: optuna.Study, spec: StudySpec, chosen: FrozenTrial, data_dir: Path, root: Path
) -> list[tuple[int, TrainConfig]]:
    """The members `selection.ensemble` asks for: the chosen trial's seeds, or every seed of
    every candidate `hpo select` did not stop (best mean first); each saved under `root`."""
    selection = spec.selection
    trials = [chosen]
    if selection.ensemble == "candidates":
        ran = stored.selections_of(study.user_attrs)
        kept = [n for n, c in ran.items() if not c.pruned and n != chosen.number]
        kept.sort(
            key=lambda n: ran[n].mean, reverse=spec.objective.resolved_direction == "maximize"
        )
        trials += [study.trials[n] for n in kept]
    return [
        (t.number, member_config(spec, t, data_dir, i, root))
        for t in trials
        for i in range(selection.seeds)
    ]


def evaluate_test(
    best, config: TrainConfig, n_resamples: int = 1000, seed: int = 0
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Test scores (at 0.5 and at the model's thresholds), bootstrap intervals and speed;
    returns them with the test labels and probabilities (for plots)."""
    from trainers.data import load_split
    from trainers.evaluate import (
        bootstrap_intervals,
        multi_class_scores,
        multi_label_scores,
        predict_probabilities,
    )

    test = load_split(config.data.test_path, config.data, config.task)
    probs, seconds = predict_probabilities(best, test.texts)
    names = config.data.label_names
    if config.task == "multi_label":
        y = test.labels.astype(np.int64)
        scores = {
            "default": multi_label_scores(y, probs, names, 0.5),
            "tuned": multi_label_scores(y, probs, names, best.thresholds),
        }
    else:
        y = test.labels
        scores = {"default": multi_class_scores(y, probs, names)}
    scores["intervals"] = (
        bootstrap_intervals(config.task, y, probs, best.thresholds, n_resamples, seed)
        if n_resamples
        else {}
    )
    speed = {
        "n_test": len(y),
        "texts_per_s": len(y) / seconds,
        "seconds_per_1000_texts": 1000 * seconds / len(y),
    }
    return {"test": scores, **speed}, y, probs


def retrain_best(
    study: optuna.Study,
    spec: StudySpec,
    data_dir: Path,
    out_dir: Path,
    n_resamples: int = 1000,
    trial_number: int | None = None,
    members_dir: Path | None = None,
) -> BestMetrics:
    """Retrain the best trial (or trial `trial_number`; a multi-objective study: the Pareto trial
    hpo.objectives.chosen_trial picks), save it under `out_dir`, evaluate it on test, write
    metrics.json and its report; returns the metrics."""
    from hpo.report.figures import best_figures
    from hpo.report.render import write_best_report
    from trainers.checkpoint import load_best, save_best, weights_size_mb

    trial = best_trial(study, trial_number)
    require_same_data(study, spec, data_dir)
    config = retrain_config(spec, trial, data_dir)
    log.info(
        "retraining trial %d of %s for %d of its %d epoch(s): %s",
        trial.number,
        spec.name,
        config.hyper.epochs_to_run,
        config.hyper.epochs,
        trial.params,
    )
    selection = spec.selection
    if selection and selection.ensemble != "none":
        members = ensemble_members(
            study, spec, trial, data_dir, members_dir or out_dir.parent / MEMBERS_DIR
        )
        trained = train_ensemble(config, members)
    else:
        cross_fit = selection.folds if selection and selection.thresholds == "cross_fit" else None
        trained = train(config, cross_fit)
    if spec.blend:
        trained = with_blend(trained, spec.blend)
    model = trained.best
    device = next(model.model.parameters()).device
    save_best(out_dir, model.model, model.tokenizer, model.labels, model.thresholds, model.extractor, model.blend)  # fmt: skip
    saved = load_best(out_dir, device=str(device))  # score what `hpo predict` will load
    evaluation, y, probs = evaluate_test(saved, config, n_resamples)
    names = config.data.label_names
    maximize = spec.objective.resolved_direction == "maximize"
    baseline = majority_baseline(spec, data_dir)
    objective = {
        "metric": spec.objective.metric,
        "trial_value": primary_value(trial),
        "retrained_val_value": trained.val_metrics["monitor_value"],
        "baseline_val_value": baseline.get(spec.objective.metric),
    }
    predicted = {
        n: v["predicted_positive"] for n, v in evaluation["test"]["default"]["per_label"].items()
    }
    where = "at 0.5 on test" if config.task == "multi_label" else "on test"
    collapse = collapse_warnings(
        predicted,
        objective["retrained_val_value"],
        objective["baseline_val_value"],
        maximize,
        where,
    )
    metrics = BestMetrics.model_validate(stored.json_safe({
        "study": spec.name,
        "trial": trial.number,
        "params": trial.params,
        "epochs": config.hyper.epochs_to_run,
        "task": config.task,
        "labels": list(names),
        "thresholds": None if model.thresholds is None else dict(zip(names, map(float, model.thresholds), strict=True)),
        "objective": objective,
        "val": trained.val_metrics,
        "baseline_val": baseline,
        **evaluation,
        "model_size_mb": weights_size_mb(out_dir),
        "collapse": [f"retrained model: {w}" for w in collapse],
        "members": trained.members,
        "blend": trained.blend,
    }))  # fmt: skip
    metrics.write(out_dir)
    summary = StudySummary(name=spec.name, spec=spec, warnings=list(metrics.collapse))
    for table in best_model_tables(metrics):
        summary.add(table.key, table.title, table.frame)
    header = _best_header(metrics)
    figures = best_figures(config.task, y, probs, names, model.thresholds)
    write_best_report(
        out_dir,
        f"{spec.name}: retrained best model (trial {trial.number})",
        header,
        summary,
        figures,
    )
    return metrics


def best_trial(study: optuna.Study, number: int | None = None) -> FrozenTrial:
    """Trial `number`; else the trial `hpo select` chose on its mean over seeds; else the search's best."""
    from hpo.best.select import selected_trial

    if number is None and (chosen := selected_trial(study)) is not None:
        return chosen
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise HpoError(
            f"study {study.study_name} has no complete trial to retrain; run `hpo study {study.study_name}` first"
        )
    return chosen_trial(study, number)


def _best_header(m: BestMetrics) -> list[str]:
    o = m.objective
    params = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in m.params.items()
    )
    return [
        f"Trial {m.trial} ({params}) retrained for {m.epochs} epoch(s), its best epoch count."
        if not m.members
        else f"Trial {m.trial} ({params}) selected; {_members_line(m.members)}.",
        f"Validation {o.metric}: trial {show(o.trial_value)}, retrained {show(o.retrained_val_value)}, "
        f"all-majority baseline {show(o.baseline_val_value)}.",
        "Thresholds were chosen on validation only; the test split was read once, after training."
        if m.task == "multi_label"
        else "Multi-class: the predicted class is the most probable one.",
        f"Test: {m.n_test} texts; 95 % intervals from bootstrap resampling of the test texts.",
        _blend_line(m.blend) if m.blend else "",
        "The trial was measured dynamically quantised to int8 (int8: true): this is its fp32 model; `hpo compress` builds the int8 variant."
        if m.params.get("int8")
        else "",
    ]


def _blend_line(b: BlendRecord) -> str:
    from trainers.blend import SIDE_MODELS

    alone = ", ".join(
        [f"the model alone {show(b.model_val_value)}"]
        + [f"{SIDE_MODELS[k][2]} alone {show(v)}" for k, v in b.side_val_values.items()]
    )
    if not b.kept:
        return f"No blend: no candidate weights beat the model alone (validation {b.metric}: {alone})."
    mixed = show(b.by_weights[weights_key(b.weights)])
    parts = " and ".join(f"{SIDE_MODELS[k][2]} at weight {w:g}" for k, w in b.kept.items())
    return f"Probabilities mixed with {parts}, chosen on validation ({b.metric}: {alone}, the mix {mixed})."


def _members_line(members: list) -> str:
    counts = Counter(e.trial for e in members)  # the selected trial first
    parts = ", ".join(f"trial {t} at {n} seed(s)" for t, n in counts.items())
    return f"the delivered model averages the probabilities of {len(members)} models ({parts}), each at its best epoch"


def show(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, (int, float)) and math.isfinite(x) else "n/a"
