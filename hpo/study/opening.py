"""Create a study once, or load it with the spec's sampler and pruner; refuse one that was
started from a different spec or on different data; write the study-level facts the dashboard
and reports show."""

from __future__ import annotations

import optuna
from sqlalchemy.exc import SQLAlchemyError

from hpo import stored
from hpo.errors import HpoError
from hpo.spec import StudySpec
from hpo.study.preflight import DataFacts, changed_splits
from hpo.study.strategy import build_pruner, build_sampler
from storage import StorageError, open_storage, proxy_address, redact, with_retries


def open_study(
    spec: StudySpec, storage_url: str, *, heartbeat_interval: int | None = 60
) -> optuna.Study:
    """The storage keeps neither sampler nor pruner: every worker passes the spec's own, never
    Optuna's defaults."""
    storage = open_storage(storage_url, heartbeat_interval=heartbeat_interval)
    try:
        return _create_or_load(spec, storage, storage_url)
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
        raise StorageError(
            f"cannot open study {spec.name!r} on {redact(storage_url)}: {' '.join(str(getattr(e, 'orig', None) or e).split())[:200]}"
        ) from None


def _create_or_load(spec: StudySpec, storage, storage_url: str) -> optuna.Study:
    return with_retries(
        lambda: optuna.create_study(
            study_name=spec.name,
            storage=storage,
            sampler=build_sampler(spec),
            pruner=build_pruner(spec),
            directions=spec.directions,
            load_if_exists=True,
        ),
        what=f"open study {spec.name!r} on {redact(storage_url)}",
    )


RESUMABLE = (
    "n_trials",
    "description",
    "tracking",
    "compress",
    "budget",
    "selection",
    "blend",
)  # what a resumed study may change: run more trials, reword it, track it elsewhere, or change
# what follows the search


def fingerprint(spec: StudySpec) -> dict:
    """The resolved spec minus what may change on resume."""
    return spec.model_dump(mode="json", exclude=set(RESUMABLE))


def _verbs(directions: list[str]) -> str:
    """["maximize"] -> "maximizes"; ["maximize", "minimize"] -> "maximizes, minimizes"."""
    return ", ".join(f"{d}s" for d in directions)


def check_same_spec(study: optuna.Study, spec: StudySpec, storage_url: str) -> None:
    """One study, one search: resuming a study with a changed spec would mix its trials silently."""
    directions = [d.name.lower() for d in study.directions]
    if directions != spec.directions:  # load_if_exists keeps the stored ones without a word
        metrics = ", ".join(o.metric for o in spec.all_objectives)
        raise HpoError(
            f"study {spec.name!r} on {redact(storage_url)} exists and {_verbs(directions)}, but the spec {_verbs(spec.directions)} "
            f"{metrics}; delete it or give the spec a new name"
        )
    recorded = study.user_attrs.get(stored.SPEC_RESOLVED)
    if recorded is None or not study.get_trials(deepcopy=False):
        return
    recorded = {k: v for k, v in recorded.items() if k not in RESUMABLE}
    current = fingerprint(spec)
    changed = [
        path
        for key in sorted(set(recorded) | set(current))
        for path in _changed(key, recorded.get(key), current.get(key))
    ]
    if changed:
        url = redact(storage_url)
        database = (
            "<the database URL behind the proxy>" if proxy_address(storage_url) else url
        )  # Optuna's CLI takes no grpc://
        raise HpoError(
            f"study {spec.name!r} on {url} was started from a different spec ({', '.join(changed)} changed); "
            f"delete it (optuna delete-study --study-name {spec.name} --storage {database}) or give the spec a new name"
        )


def _changed(key: str, old: object, new: object) -> list[str]:
    """`key`, or `key.sub` for each changed entry when both sides are mappings."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        return [f"{key}.{k}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return [key]


def check_same_data(
    study: optuna.Study, spec: StudySpec, facts: DataFacts, storage_url: str
) -> None:
    """One study, one data set: trials scored on other train or val data would not compare."""
    if not study.get_trials(deepcopy=False):
        return
    changed = changed_splits(study.user_attrs.get(stored.DATA_FINGERPRINT), facts)
    if changed:
        url = redact(storage_url)
        raise HpoError(
            f"study {spec.name!r} on {url} ran on different data ({'; '.join(changed)} changed); point --data-dir at its data, "
            f"or delete the study (optuna delete-study --study-name {spec.name} --storage {url}) or give the spec a new name"
        )


def describe_study(study: optuna.Study, spec: StudySpec, spec_text: str, facts: DataFacts) -> None:
    """Study-level facts the dashboard and reports show; the resolved spec the results commands use."""
    from hpo.dashboard.notes import annotate_study

    study.set_user_attr(stored.SPEC_YAML, spec_text)
    study.set_user_attr(stored.SPEC_RESOLVED, spec.model_dump(mode="json"))
    study.set_user_attr(
        stored.OBJECTIVE,
        ", ".join(f"{o.metric} ({o.resolved_direction})" for o in spec.all_objectives),
    )
    study.set_user_attr(stored.TASK, spec.task)
    study.set_user_attr(stored.MODEL, spec.model.name_or_path)
    for key, value in facts.as_attrs().items():
        study.set_user_attr(key, value)
    annotate_study(study, spec, spec_text, facts)


def n_finished(study: optuna.Study) -> int:
    """Complete and pruned trials, less those pruned as infeasible (hpo.trial.feasibility)."""
    from hpo.trial.feasibility import counts_as_finished

    return sum(counts_as_finished(t) for t in study.get_trials(deepcopy=False))
