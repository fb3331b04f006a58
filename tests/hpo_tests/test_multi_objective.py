"""A multi-objective study: the spec takes two objectives and refuses a pruner, trials train a
searched architecture and are measured as deployed, the report has a Pareto table and plot,
the dashboard names both objectives, and retraining picks a Pareto trial by its stated rule."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest
import yaml

from hpo import stored
from hpo.cli import main as cli_main
from hpo.errors import SpecError
from hpo.objectives import PARETO_RULE, chosen_trial
from hpo.report import open_existing_study, report_study
from hpo.spec import load_spec
from hpo.study import open_study, print_best
from testing.data import slice_dataset
from testing.specs import tiny_ucc_spec

OBJECTIVES = [
    {"metric": "tuned_macro_f1", "direction": "maximize"},
    {"metric": "texts_per_second", "direction": "maximize"},
]
SPACE = {"layers_kept": {"type": "categorical", "choices": [1, 2]}, "max_length": {"type": "categorical", "choices": [32, 64]},
         "int8": {"type": "categorical", "choices": [False, True]}}  # fmt: skip


def pareto_spec(path, **overrides):
    tiny_ucc_spec(path, name="tiny-pareto", objectives=OBJECTIVES, training={"epochs": 1, "batch_size": 32, "learning_rate": 1e-3},
                  sampler={"type": "grid", "seed": 0}, n_trials=3)  # fmt: skip
    raw = yaml.safe_load(path.read_text())
    raw["search_space"] = SPACE  # the tiny spec's learning-rate range is not a grid
    raw.pop("pruner")
    raw.update(overrides)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_two_objectives_refuse_a_pruner_in_one_line(tmp_path):
    path = pareto_spec(tmp_path / "s.yaml", pruner={"type": "median"})
    with pytest.raises(SpecError) as caught:
        load_spec(str(path))
    message = str(caught.value)
    assert (
        "\n" not in message
        and "pruner 'median' cannot prune a study with 2 objectives" in message
        and "pruner: {type: none}" in message
    )


def test_two_objectives_default_to_no_pruner_and_a_validation_metric_first(tmp_path):
    spec = load_spec(str(pareto_spec(tmp_path / "s.yaml")))
    assert (
        spec.pruner.type == "none"
        and spec.objective.metric == "tuned_macro_f1"
        and spec.directions == ["maximize", "maximize"]
    )
    config = spec.train_config(tmp_path, {"layers_kept": 1, "max_length": 32, "int8": True})
    assert (
        config.model.max_length == 32
        and config.hyper.layers_kept == 1
        and config.hyper.int8
        and config.measure_deployed
    )
    swapped = pareto_spec(tmp_path / "t.yaml", objectives=OBJECTIVES[::-1])
    with pytest.raises(
        SpecError,
        match="objectives.0.metric 'texts_per_second' is not one of .* a validation metric",
    ):
        load_spec(str(swapped))
    both = pareto_spec(tmp_path / "u.yaml", objective={"metric": "macro_f1"})
    with pytest.raises(SpecError, match="give objective .* or objectives .*, not both"):
        load_spec(str(both))


@pytest.fixture(scope="module")
def pareto_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("pareto")
    data = slice_dataset(root / "data", "ucc", {"train": 64, "val": 48, "test": 48})
    spec_path = pareto_spec(root / "tiny-pareto.yaml")
    spec = load_spec(str(spec_path))
    url = f"sqlite:///{root / 'optuna.db'}"
    # Through the command line, as a user runs it: opening checks the stored directions.
    assert cli_main(["study", str(spec_path), "--data-dir", str(data), "--storage", url]) == 0
    return spec, open_study(spec, url), url, root, data


def test_a_study_of_that_name_with_other_directions_is_refused_in_one_line(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name="tiny-pareto", storage=url, directions=["maximize", "minimize"])
    data = slice_dataset(tmp_path / "data", "ucc", {"train": 64, "val": 48, "test": 48})
    spec_path = pareto_spec(tmp_path / "tiny-pareto.yaml")
    assert cli_main(["study", str(spec_path), "--data-dir", str(data), "--storage", url]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and (
        "exists and maximizes, minimizes, but the spec maximizes, maximizes "
        "tuned_macro_f1, texts_per_second" in err
    )


def test_trials_are_measured_as_deployed_and_never_report_epochs(pareto_study):
    _, study, _, _, _ = pareto_study
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3 and len(study.directions) == 2
    for t in trials:
        deployed = t.user_attrs[stored.DEPLOYED]
        assert t.values == [
            pytest.approx(deployed["tuned_macro_f1"]),
            pytest.approx(deployed["texts_per_second"]),
        ]
        assert (
            deployed["model_size_mb"] > 0
            and t.intermediate_values == {}
            and stored.epoch_key(1) in t.user_attrs
        )
    assert study.metric_names == [
        "tuned_macro_f1",
        "texts_per_second",
    ]  # the dashboard's axis names
    int8 = [t for t in trials if t.params["int8"]]
    fp32 = [
        t
        for t in trials
        if not t.params["int8"]
        and t.params["layers_kept"] == (int8[0].params["layers_kept"] if int8 else 0)
    ]
    if int8 and fp32:
        assert (
            int8[0].user_attrs[stored.DEPLOYED]["model_size_mb"]
            < fp32[0].user_attrs[stored.DEPLOYED]["model_size_mb"]
        )


def test_the_report_has_a_pareto_table_and_plot(pareto_study):
    spec, study, url, root, data = pareto_study
    html = report_study(spec.name, url, data, runs_root=root / "runs")
    pareto = pd.read_csv(html.parent / "pareto.csv")
    assert set(pareto["trial"]) == {t.number for t in study.best_trials}
    assert {
        "tuned_macro_f1",
        "texts_per_second",
        "layers_kept",
        "max_length",
        "int8",
        "model_size_mb",
    } <= set(pareto.columns)
    assert (
        "Pareto front" in (html.parent / "report.md").read_text()
        and "Pareto front (tuned_macro_f1 vs texts_per_second)" in html.read_text()
    )
    trials = pd.read_csv(html.parent / "trials.csv")
    assert trials["pareto"].sum() == len(study.best_trials) and "texts_per_second" in trials


def test_retraining_picks_a_pareto_trial_by_its_rule_or_the_one_asked_for(pareto_study, capsys):
    _, study, url, _, _ = pareto_study
    loaded, _ = open_existing_study(study.study_name, url)
    best = max(loaded.best_trials, key=lambda t: (t.values[0], -t.number))
    assert chosen_trial(loaded) == best and "best first objective" in PARETO_RULE
    assert chosen_trial(loaded, 0).number == 0
    print_best(loaded)
    out = capsys.readouterr().out
    assert (
        f"Pareto front of tuned_macro_f1 (maximize), texts_per_second (maximize): {len(loaded.best_trials)} trial(s)"
        in out
    )
