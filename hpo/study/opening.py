"""Create a study once, or load it with the spec's sampler and pruner; refuse one that was
started from a different spec; write the study-level facts the dashboard and reports show."""

from __future__ import annotations

import optuna

from hpo import stored
from hpo.errors import HpoError
from hpo.spec import StudySpec
from hpo.study.preflight import DataFacts
from hpo.study.strategy import build_pruner, build_sampler
from storage import open_storage, proxy_address, redact, with_retries


def open_study(spec: StudySpec, storage_url: str, *, heartbeat_interval: int | None = 60) -> optuna.Study:
    """The storage keeps neither sampler nor pruner: every worker passes the spec's own, never
    Optuna's defaults."""
    storage = open_storage(storage_url, heartbeat_interval=heartbeat_interval)
    return with_retries(
        lambda: optuna.create_study(
            study_name=spec.name,
            storage=storage,
            sampler=build_sampler(spec),
            pruner=build_pruner(spec),
            direction=spec.objective.resolved_direction,
            load_if_exists=True,
        ),
        what=f"open study {spec.name!r} on {redact(storage_url)}",
    )


def fingerprint(spec: StudySpec) -> dict:
    """The resolved spec minus what may change on resume (n_trials: run more; the description)."""
    return spec.model_dump(mode="json", exclude={"n_trials", "description"})


def check_same_spec(study: optuna.Study, spec: StudySpec, storage_url: str) -> None:
    """One study, one search: resuming a study with a changed spec would mix its trials silently."""
    recorded = study.user_attrs.get(stored.SPEC_RESOLVED)
    if recorded is None or not study.get_trials(deepcopy=False):
        return
    current = fingerprint(spec)
    changed = [path for key in sorted(set(recorded) | set(current)) for path in _changed(key, recorded.get(key), current.get(key))]
    if changed:
        url = redact(storage_url)
        database = "<the database URL behind the proxy>" if proxy_address(storage_url) else url  # Optuna's CLI takes no grpc://
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


def describe_study(study: optuna.Study, spec: StudySpec, spec_text: str, facts: DataFacts) -> None:
    """Study-level facts the dashboard and reports show."""
    from hpo.dashboard.notes import annotate_study

    study.set_user_attr(stored.SPEC_YAML, spec_text)
    study.set_user_attr(stored.SPEC_RESOLVED, fingerprint(spec))
    study.set_user_attr(stored.OBJECTIVE, f"{spec.objective.metric} ({spec.objective.resolved_direction})")
    study.set_user_attr(stored.TASK, spec.task)
    study.set_user_attr(stored.MODEL, spec.model.name_or_path)
    for key, value in facts.as_attrs().items():
        study.set_user_attr(key, value)
    annotate_study(study, spec, spec_text, facts)


def n_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)))
