"""What the dashboard shows of a study beyond its trials: the objective's name, a study note
with the spec and the data, and notes rewritten after the study."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import optuna

if TYPE_CHECKING:
    from hpo.spec import StudySpec
    from hpo.study.preflight import DataFacts


def annotate_study(study: optuna.Study, spec: StudySpec, spec_text: str, facts: DataFacts) -> None:
    """Name the objective (the dashboard's axis titles) and write the study note. The note is
    rewritten from the spec whenever it changes: notes of your own belong on trials."""
    from optuna_dashboard import get_note, save_note

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(
            [o.metric for o in spec.all_objectives]
        )  # several: the dashboard draws their Pareto front
    body = study_note(spec, spec_text, facts)
    if get_note(study) != body:
        save_note(study, body)


def study_note(spec: StudySpec, spec_text: str, facts: DataFacts) -> str:
    objective = spec.objective
    sizes = ", ".join(f"{split} {n}" for split, n in facts.rows.items())
    if spec.multi_objective:
        named = ", ".join(f"{o.resolved_direction} `{o.metric}`" for o in spec.all_objectives)
        text = (f"**Objectives:** {named}, measured after training on the best epoch's model (by `{objective.metric}` on "
                "validation) as deployed; the Pareto front is under *Analytics*. No intermediate values: Optuna prunes single-objective studies only.")  # fmt: skip
    else:
        text = (
            f"**Objective:** {objective.resolved_direction} `{objective.metric}` on the validation split, "
            "reported after every epoch (the trials' intermediate values); a trial's value is its best epoch's."
        )
    lines = [
        f"## {spec.name}",
        spec.description,
        "",
        text,
        "",
        f"**Task:** {spec.task}, model `{spec.model.name_or_path}`. **Data** (rows): {sizes}.",
    ]
    if facts.warnings:
        lines += [
            "",
            "**Warnings** (the study runs, but look):",
            *(f"- {w}" for w in facts.warnings),
        ]
    if facts.train_prevalence:
        lines += [
            "",
            "| label | share of train |",
            "|---|---|",
            *(f"| {k} | {v:.3f} |" for k, v in facts.train_prevalence.items()),
        ]
    if facts.profile is not None:
        from hpo.report.profile_tables import profile_markdown

        lines += ["", "### Data profile", "", profile_markdown(facts.profile)]
    lines += ["", "### Spec", "```yaml", spec_text.rstrip(), "```"]
    return "\n".join(lines)


def set_note_section(study: optuna.Study, trial_id: int, heading: str, section: str) -> None:
    """Replace the finished trial's note from `heading` on with `heading` and `section` (or add
    them), keeping what is above."""
    # optuna_dashboard.save_note needs a live optuna.Trial, which cannot be made for a finished
    # trial; these are the functions it calls, with the same versioning.
    from optuna_dashboard._note import get_note_from_system_attrs, save_note_with_version

    storage = study._storage
    note = get_note_from_system_attrs(storage.get_study_system_attrs(study._study_id), trial_id)
    body = note["body"].split(f"\n\n{heading}")[0]
    save_note_with_version(
        storage, study._study_id, trial_id, note["version"] + 1, f"{body}\n\n{heading}\n{section}"
    )
