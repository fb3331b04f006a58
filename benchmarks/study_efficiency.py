"""Models per compute-hour: a plain Optuna script against `hpo study`, same data, same backbone,
same wall-clock budget, one arm after the other.

- plain: what a practitioner writes. One process, `study.optimize(objective, timeout=budget)`,
  TPE and MedianPruner over learning rate and batch size, 3 epochs, trainers.loop's competent
  loop (dynamic padding, length-grouped batches, BCE, best epoch kept), the best trial's model
  kept in memory, per-label thresholds tuned on val at the end.
- service: `hpo study SPEC --budget-min B`, then `hpo retrain` (default spec: studies/ucc-best,
  the service's best CPU settings; `--select` keeps the spec's seed re-runs, inside the budget).

Per arm: configurations started and finished, epoch-units trained, share pruned, best
validation objective, and the delivered model's test macro ROC-AUC and macro F1 at its tuned
thresholds (test read once per arm); then service - plain with 95 % paired bootstrap intervals
over test comments (the same resamples for both arms).

    python -m benchmarks.study_efficiency [--budget-min 30] [--quick] [--spec studies/ucc-best.yaml] [--select]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from testing.data import REPO, add_data_dir_argument

DEFAULT_SPEC = REPO / "studies" / "ucc-best.yaml"


@dataclass
class Arm:
    name: str
    started: int
    finished: int
    epochs: int
    pruned: int
    best_val: float
    y: np.ndarray
    probs: np.ndarray
    thresholds: np.ndarray
    seconds: float
    # After the budget: the service's `hpo retrain` (a seed ensemble trains once per seed).
    retrain_seconds: float = 0.0

    def row(self) -> dict:
        from trainers.evaluate import multi_label_scores

        names = tuple(str(i) for i in range(self.y.shape[1]))
        tuned = multi_label_scores(self.y, self.probs, names, self.thresholds)
        return {"arm": self.name, "started": self.started, "finished": self.finished, "epoch-units": self.epochs,
                "pruned share": self.pruned / max(1, self.finished), "best val": self.best_val,
                "test macro ROC-AUC": tuned["macro_roc_auc"], "test macro F1": tuned["macro_f1"], "minutes": self.seconds / 60,
                "retrain minutes": self.retrain_seconds / 60}  # fmt: skip


def epochs_trained(trials) -> int:
    return sum(len(t.intermediate_values) for t in trials)


# ---- plain arm --------------------------------------------------------------------------------


def plain_arm(spec, data_dir: Path, budget_s: float) -> Arm:
    """One process, `study.optimize(timeout=…)`; the best trial's weights are kept in memory."""
    import optuna

    from trainers.checkpoint import BestModel, LabelInfo
    from trainers.data import load_split
    from trainers.evaluate import predict_probabilities
    from trainers.loop import train_and_evaluate
    from trainers.thresholds import best_f1_thresholds

    base = {
        k: v for k, v in spec.training.items() if k in ("max_grad_norm",)
    }  # a practitioner's settings
    epochs = int(spec.training.get("epochs", 3))
    kept: dict = {}

    class Reporter:
        def __init__(self, trial):
            self.trial = trial

        def report(self, epoch: int, metrics: dict) -> bool:
            self.trial.report(metrics["monitor_value"], epoch)
            return self.trial.should_prune()

        def report_resources(self, resources) -> None:
            pass

    def objective(trial: optuna.Trial) -> float:
        params = {"learning_rate": trial.suggest_float("learning_rate", 1e-5, 2e-4, log=True),
                  "batch_size": trial.suggest_categorical("batch_size", [16, 32]), "epochs": epochs, **base}  # fmt: skip
        config = plain_config(spec, data_dir, params, seed=trial.number)
        result = train_and_evaluate(config, Reporter(trial), keep_model=True)
        if result.stopped_early:
            raise optuna.TrialPruned()
        if not kept or result.best_value > kept["value"]:
            kept.update(value=result.best_value, result=result, config=config)
        return result.best_value

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0),
        pruner=optuna.pruners.MedianPruner(),
    )
    start = time.perf_counter()
    study.optimize(objective, timeout=budget_s)
    seconds = time.perf_counter() - start
    result, config = kept["result"], kept["config"]
    val = load_split(config.data.val_path, config.data, config.task)
    thresholds = best_f1_thresholds(val.labels.astype(np.int64), result.val_probs)
    labels = LabelInfo(
        config.task, config.data.label_names, config.data.text_column, config.model.max_length
    )
    best = BestModel(result.model, result.tokenizer, labels, thresholds, None)
    test = load_split(config.data.test_path, config.data, config.task)
    probs, _ = predict_probabilities(best, test.texts)
    finished = [t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]
    return Arm("plain", len(study.trials), len(finished), epochs_trained(study.trials),
               sum(t.state.name == "PRUNED" for t in study.trials), kept["value"], test.labels.astype(np.int64), probs, thresholds, seconds)  # fmt: skip


def plain_config(spec, data_dir: Path, params: dict, seed: int):
    """The spec's data, model and objective; the trainer's defaults for everything else."""
    from trainers.config import Hyperparams, TrainConfig

    return TrainConfig(task=spec.task, data=spec.data_config(data_dir), model=spec.model,
                       hyper=Hyperparams.model_validate({**params, "seed": seed}),
                       monitor=spec.objective.metric, monitor_mode="max")  # fmt: skip


# ---- service arm ------------------------------------------------------------------------------


def service_arm(
    spec_path: Path, data_dir: Path, budget_min: float, work: Path, select: bool
) -> Arm:
    """`hpo study --budget-min` (with its seed re-runs when `select`), then `hpo retrain`, as subprocesses."""
    import optuna

    from hpo.spec import load_spec
    from trainers.checkpoint import load_best
    from trainers.data import load_split
    from trainers.evaluate import predict_probabilities

    spec = load_spec(str(spec_path))
    url = f"sqlite:///{work / 'optuna.db'}"
    hpo = [sys.executable, "-m", "hpo"]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    common = ["--storage", url, "--data-dir", str(data_dir)]
    search_min = budget_min * (
        0.7 if select else 1.0
    )  # selection re-runs get the rest of the budget
    start = time.perf_counter()
    study_cmd = [*hpo, "study", str(spec_path), *common, "--budget-min", f"{search_min:g}"]
    subprocess.run(
        [*study_cmd] + ([] if select else ["--no-select"]), check=True, env=env, cwd=work
    )
    seconds = time.perf_counter() - start
    subprocess.run(
        [*hpo, "retrain", spec.name, *common, "--resamples", "0"], check=True, env=env, cwd=work
    )
    retrain_seconds = time.perf_counter() - start - seconds
    study = optuna.load_study(study_name=spec.name, storage=url)
    best = load_best(work / "runs" / spec.name / "best")
    config = spec.train_config(data_dir, {})
    test = load_split(config.data.test_path, config.data, config.task)
    probs, _ = predict_probabilities(best, test.texts)
    finished = [t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]
    return Arm("service", len(study.trials), len(finished), epochs_trained(study.trials),
               sum(t.state.name == "PRUNED" for t in study.trials), study.best_value, test.labels.astype(np.int64), probs,
               np.asarray(best.thresholds), seconds, retrain_seconds)  # fmt: skip


# ---- comparison -------------------------------------------------------------------------------


def paired_difference(
    service: Arm, plain: Arm, n_resamples: int = 1000, seed: int = 0
) -> dict[str, tuple[float, float, float]]:
    """service - plain on the test comments, each figure with a 95 % paired bootstrap interval
    (both arms scored on the same resamples)."""
    from trainers.evaluate import resample_counts, resampled_scores

    assert np.array_equal(service.y, plain.y)
    counts = resample_counts(len(plain.y), n_resamples, seed)
    ones = np.ones((1, len(plain.y)))
    out = {}
    for key, label in (
        ("macro_roc_auc", "test macro ROC-AUC"),
        ("tuned.macro_f1", "test macro F1"),
    ):
        point = resampled_scores("multi_label", service.y, service.probs, service.thresholds, ones)[key][0] - \
            resampled_scores("multi_label", plain.y, plain.probs, plain.thresholds, ones)[key][0]  # fmt: skip
        diffs = resampled_scores("multi_label", service.y, service.probs, service.thresholds, counts)[key] - \
            resampled_scores("multi_label", plain.y, plain.probs, plain.thresholds, counts)[key]  # fmt: skip
        diffs = diffs[np.isfinite(diffs)]
        out[label] = (
            float(point),
            float(np.percentile(diffs, 2.5)),
            float(np.percentile(diffs, 97.5)),
        )
    return out


def print_table(arms: list[Arm], diff: dict) -> None:
    rows = [a.row() for a in arms]
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print(
            "| "
            + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in r.values())
            + " |"
        )
    s, p = rows[1], rows[0]
    print(f"configurations finished: service/plain = {s['finished'] / max(1, p['finished']):.2f}x")
    for label, (point, low, high) in diff.items():
        print(
            f"service - plain, {label}: {point:+.4f} [{low:+.4f}, {high:+.4f}] (95 % paired bootstrap over test comments)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.study_efficiency", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--budget-min",
        type=float,
        default=None,
        help="wall-clock minutes per arm (default 30; 2 with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 minutes per arm on 600 training comments: a smoke run, not a measurement",
    )
    parser.add_argument(
        "--spec",
        type=Path,
        default=DEFAULT_SPEC,
        help="the service arm's spec (default studies/ucc-best.yaml)",
    )
    parser.add_argument(
        "--select",
        action="store_true",
        help="service arm: keep the spec's seed re-runs after the search, inside the budget",
    )
    add_data_dir_argument(parser)
    args = parser.parse_args(argv)
    budget = args.budget_min or (2.0 if args.quick else 30.0)
    from hpo.errors import HpoError
    from hpo.spec import load_spec
    from hpo.study.preflight import check_blend_encoder

    with tempfile.TemporaryDirectory(prefix="study-efficiency-") as tmp:
        work = Path(tmp)
        data_dir = quick_data(args.data_dir, work) if args.quick else args.data_dir
        spec_path = quick_spec(args.spec, work) if args.quick else args.spec.resolve()
        spec = load_spec(str(spec_path))
        try:  # before the plain arm's half hour, not after it
            check_blend_encoder(spec)
        except HpoError as e:
            print(f"study_efficiency: {e}", file=sys.stderr)
            return 2
        print(
            f"study_efficiency: {budget:g} min per arm, spec {spec.name}, data {data_dir}",
            flush=True,
        )
        plain = plain_arm(spec, data_dir, budget * 60)
        service = service_arm(spec_path, data_dir, budget, work, args.select)
        print_table([plain, service], paired_difference(service, plain))
    return 0


def quick_data(data_dir: Path, work: Path) -> Path:
    """The first 600 / 300 / 600 comments of UCC train / val / test."""
    import pandas as pd

    out = work / "data" / "ucc"
    out.mkdir(parents=True)
    for split, n in (("train", 600), ("val", 300), ("test", 600)):
        pd.read_csv(data_dir / "ucc" / f"{split}.csv", dtype=str, keep_default_na=False).head(
            n
        ).to_csv(out / f"{split}.csv", index=False)
    return work / "data"


def quick_spec(spec_path: Path, work: Path) -> Path:
    """The spec with 2-epoch trials of max length 64, no selection and no sentence encoder in
    its blend, for a smoke run."""
    import yaml

    raw = yaml.safe_load(spec_path.read_text())
    raw["training"] = {**raw.get("training", {}), "epochs": 2}
    raw["model"] = {**raw.get("model", {}), "max_length": 64}
    raw.pop("budget", None)
    if raw.get("blend"):
        raw["blend"] = {**raw["blend"], "models": ["ngrams"]}
    out = work / spec_path.name
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


if __name__ == "__main__":
    sys.exit(main())
