"""Selection that survives noise: re-run the search's top configurations with more seeds and
choose on the mean.

On a small validation split the best trial of a search is often a lucky seed. Each of the
top-k complete trials is trained again with `seeds - 1` new seeds (its search run is seed 0);
the candidate with the best mean wins. An in-memory Optuna study holds one trial per candidate
that reports its per-seed scores with the seed index as step, so Optuna's WilcoxonPruner stops
a candidate's re-runs once it is clearly behind the best one so far (signed-rank test over the
seeds both have run). Results go to study user attributes (hpo.stored.selection_key), which
`hpo retrain` reads.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState

from hpo import stored
from hpo.best.members import member_config
from hpo.errors import HpoError
from hpo.spec import SelectionSpec, StudySpec


@dataclass(frozen=True)
class Candidate:
    trial: int
    search_value: float
    scores: list[float]
    pruned: bool

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def standard_error(self) -> float:
        return (
            float(np.std(self.scores, ddof=1) / math.sqrt(len(self.scores)))
            if len(self.scores) > 1
            else math.nan
        )

    def as_attr(self) -> dict:
        return stored.SelectionRecord(scores=self.scores, mean=self.mean, search_value=self.search_value,
                                      standard_error=self.standard_error, pruned=self.pruned).attr()  # fmt: skip


def select(
    study: optuna.Study,
    spec: StudySpec,
    data_dir: Path,
    run_seed=None,
    members_root: Path | None = None,
) -> list[Candidate]:
    """Re-run the top-k trials, store each candidate and the chosen trial; best first. Each
    re-run's model is saved under `members_root` when given (hpo.best.members)."""
    selection = spec.selection or SelectionSpec()
    maximize = spec.objective.resolved_direction == "maximize"
    top = top_trials(study, selection.top_k, maximize)
    keep = members_root if selection.ensemble != "none" else None  # only an ensemble uses them
    run_seed = run_seed or _trained_score(data_dir, keep)
    judge = _judge(maximize, selection.prune)
    candidates = [_rerun(spec, trial, selection.seeds, judge, run_seed) for trial in top]
    candidates.sort(key=lambda c: c.mean, reverse=maximize)
    for c in candidates:
        study.set_user_attr(stored.selection_key(c.trial), c.as_attr())
    study.set_user_attr(stored.SELECTED_TRIAL, candidates[0].trial)
    return candidates


def selection_due(study: optuna.Study, spec: StudySpec) -> tuple[bool, str | None]:
    """Whether the search's end should re-run the spec's top trials now, and a line saying what
    happens: not without `selection:` or a complete trial, not again when the stored selection
    covers the current top trials, and not while other workers' trials still run (the last
    worker to finish selects)."""
    selection = spec.selection
    if selection is None or not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return False, None
    maximize = spec.objective.resolved_direction == "maximize"
    top = {t.number for t in top_trials(study, selection.top_k, maximize)}
    attrs = study.user_attrs
    if stored.SELECTED_TRIAL in attrs and top <= set(stored.selections_of(attrs)):
        return (
            False,
            f"already done for the top {len(top)} trial(s); `hpo select {spec.name}` runs it again",
        )
    if study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        return (
            False,
            f"trials are still running elsewhere; run `hpo select {spec.name}` once they end",
        )
    return (
        True,
        f"re-running the top {len(top)} trial(s) with {selection.seeds - 1} more seed(s) each",
    )


def top_trials(study: optuna.Study, k: int, maximize: bool) -> list[FrozenTrial]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise HpoError(
            f"study {study.study_name} has no complete trial to select from; run `hpo study {study.study_name}` first"
        )
    return sorted(complete, key=lambda t: t.value, reverse=maximize)[:k]


def _judge(maximize: bool, prune: bool) -> optuna.Study:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        pruner = (
            optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=2)
            if prune
            else optuna.pruners.NopPruner()
        )
    return optuna.create_study(direction="maximize" if maximize else "minimize", pruner=pruner)


def _rerun(
    spec: StudySpec, trial: FrozenTrial, seeds: int, judge: optuna.Study, run_seed
) -> Candidate:
    """Seed 0 is the search run; the pruner sees each seed's score as one instance (step)."""
    scores = [float(trial.value)]
    pruned = False
    candidate = judge.ask()
    candidate.report(scores[0], 0)
    for i in range(1, seeds):
        scores.append(float(run_seed(spec, trial, i)))
        candidate.report(scores[-1], i)
        pruned = i < seeds - 1 and candidate.should_prune()
        print(f"  selection: trial {trial.number} seed {i + 1} of {seeds}: {spec.objective.metric}={scores[-1]:.4f}"
              f"{'  -> clearly behind, stopped' if pruned else ''}", flush=True)  # fmt: skip
        if pruned:
            break
    judge.tell(
        candidate,
        float(np.mean(scores)) if not pruned else None,
        state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
    )
    return Candidate(trial.number, float(trial.value), scores, pruned)


def _trained_score(data_dir: Path, members_root: Path | None):
    def run(spec: StudySpec, trial: FrozenTrial, i: int) -> float:
        from hpo.trial.process import run_trial_process

        config = member_config(spec, trial, data_dir, i, members_root)
        seed = config.hyper.seed
        outcome = run_trial_process(config, lambda epoch, metrics: False, trainer=spec.trainer)
        if outcome.status == "failed":
            raise HpoError(
                f"trial {trial.number}, seed {seed}: {str(outcome.error).splitlines()[0]}"
            )
        return float(outcome.best_value)

    return run


def selected_trial(study: optuna.Study) -> FrozenTrial | None:
    """The trial `hpo select` chose, if it ran."""
    number = study.user_attrs.get(stored.SELECTED_TRIAL)
    return None if number is None else study.trials[int(number)]


def selection_lines(candidates: list[Candidate], metric: str) -> list[str]:
    lines = [f"{'trial':>5}  {'search':>8}  {'mean ' + metric:>22}  {'s.e.':>7}  seeds"]
    for c in candidates:
        flag = "  (stopped: clearly behind)" if c.pruned else ""
        lines.append(
            f"{c.trial:5d}  {c.search_value:8.4f}  {c.mean:22.4f}  {c.standard_error:7.4f}  {len(c.scores)}{flag}"
        )
    return lines
