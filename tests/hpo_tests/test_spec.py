"""Spec validation: every mistake is one line naming the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel

from hpo.errors import SpecError
from hpo.spec import StudySpec, load_spec
from testing.data import REPO, RealData
from testing.specs import tiny_ucc_spec
from testing.workers import run_hpo

SHIPPED = sorted(p.stem for p in (REPO / "studies").glob("*.yaml"))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_specs_validate(name, monkeypatch):
    monkeypatch.chdir(REPO)
    spec = load_spec(name)
    assert spec.name == name
    config = spec.train_config("data", {k: _any_value(p) for k, p in spec.search_space.items()})
    assert config.monitor == spec.objective.metric


def _any_value(param):
    return param.choices[0] if param.type == "categorical" else param.low


def test_classic_grid_is_the_3x3_table(monkeypatch):
    monkeypatch.chdir(REPO)
    spec = load_spec("roberta-multilabel")
    assert spec.sampler.type == "grid" and spec.grid_size == 9 == spec.n_trials
    assert spec.search_space["batch_size"].choices == [16, 32, 64]
    assert spec.search_space["learning_rate"].choices == [1e-5, 3e-5, 5e-5]
    assert (
        spec.training["max_grad_norm"] == 1.0
        and spec.training["epochs"] == 3
        and spec.model.max_length == 128
    )
    assert (
        spec.objective.metric == "tuned_macro_f1"
    )  # not F1 at 0.5: it rewards the all-"healthy" model


def _write(tmp_path: Path, **overrides) -> Path:
    return tiny_ucc_spec(tmp_path / "s.yaml", **overrides)


def _error(path: Path) -> str:
    with pytest.raises(SpecError) as e:
        load_spec(str(path))
    message = str(e.value)
    assert "\n" not in message and str(path) in message
    return message


def test_unknown_key_is_named(tmp_path):
    path = _write(tmp_path, training={"epochs": 2, "batch_sise": 3})
    assert "batch_sise" in _error(path)


def test_unknown_top_level_key(tmp_path):
    path = _write(tmp_path, n_trails=3)
    assert "n_trails" in _error(path) and "unknown field" in _error(path)


def test_wrong_type_names_field_and_value(tmp_path):
    path = _write(tmp_path, n_trials="many")
    message = _error(path)
    assert "n_trials" in message and "'many'" in message


def test_bad_search_space_value(tmp_path):
    path = _write(
        tmp_path, search_space={"batch_size": {"type": "categorical", "choices": [16, -1]}}
    )
    assert "search_space.batch_size" in _error(path)


def test_unknown_metric_and_task_mismatch(tmp_path):
    assert "objective.metric" in _error(_write(tmp_path, objective={"metric": "f2"}))
    assert "does not apply" in _error(_write(tmp_path, objective={"metric": "accuracy"}))


def test_grid_needs_categoricals(tmp_path):
    path = _write(tmp_path, sampler={"type": "grid"})
    assert "categorical" in _error(path)


def test_missing_spec_lists_available(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(SpecError, match="ucc-minilm"):
        load_spec("no-such-study")


def test_not_a_mapping(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("- a\n- b\n")
    assert "mapping" in _error(path)


def test_cli_prints_one_line_for_missing_column(tmp_path, real_data: RealData):
    path = _write(tmp_path, data={"text_column": "body"})
    result = run_hpo("check", str(path), "--data-dir", str(real_data.root))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [lines[-1]] and "missing column" in lines[-1] and "'body'" in lines[-1]
    assert "Traceback" not in result.stderr


def test_cli_label_column_not_binary(tmp_path, real_data: RealData):
    # '_trusted_judgments' holds counts like 3: not a 0/1 label.
    path = _write(tmp_path, data={"label_columns": ["healthy", "_trusted_judgments"]})
    result = run_hpo("check", str(path), "--data-dir", str(real_data.root))
    assert result.returncode == 2 and "'_trusted_judgments' must hold 0/1" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_missing_data_dir(tmp_path):
    path = _write(tmp_path)
    result = run_hpo("check", str(path), "--data-dir", str(tmp_path / "nowhere"))
    assert (
        result.returncode == 2
        and "no such folder" in result.stderr
        and "--data-dir" in result.stderr
    )


def test_cli_missing_model_is_one_clear_line(tmp_path, real_data: RealData):
    path = _write(tmp_path, model={"name_or_path": "roberta-base", "from_config": None})
    result = run_hpo("check", str(path), "--data-dir", str(real_data.root), HF_HUB_OFFLINE="1")
    assert result.returncode == 2
    assert "model 'roberta-base'" in result.stderr and "model.name_or_path" in result.stderr
    assert "Traceback" not in result.stderr


def test_train_config_takes_the_fixed_settings_then_the_trials_parameters_and_seed(tmp_path):
    spec = StudySpec.model_validate(
        yaml.safe_load(_write(tmp_path, training={"epochs": 2, "warmup_ratio": 0.1}).read_text())
    )
    config = spec.train_config("data", {"learning_rate": 1e-3, "warmup_ratio": 0.2}, seed=7)
    assert (
        config.hyper.learning_rate,
        config.hyper.warmup_ratio,
        config.hyper.seed,
        config.hyper.epochs,
    ) == (1e-3, 0.2, 7, 2)
    assert config.monitor == "tuned_macro_f1" and config.monitor_mode == "max"


# Where a spec may hold values of any type, each for a reason; every other field is typed.
LOOSE_BY_DESIGN = {
    "training[*]",  # fixed Hyperparams values, validated against Hyperparams at load
    "variants[*][*]",  # overlays of the spec itself, each validated as a whole spec at load
    "model.from_config[*]",  # transformers config keyword arguments, checked by transformers
    "search_space[*].choices[*]",  # a categorical's values, validated as Hyperparams values
    "search_space[*].when[*][*]",  # values of an earlier categorical, checked against its choices
}


def _loose(annotation: Any, path: str) -> set[str]:
    """Paths under `annotation` where a value may be anything (Any, or a bare dict or list)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is Any or annotation in (dict, list):
        return {path}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {
            p
            for name, f in annotation.model_fields.items()
            for p in _loose(f.annotation, f"{path}.{name}".lstrip("."))
        }
    if origin is Annotated:
        return _loose(args[0], path)
    if origin in (dict, list, tuple):
        return {
            p
            for arg in (args[1:] if origin is dict else args)
            if arg is not Ellipsis
            for p in _loose(arg, f"{path}[*]")
        }
    return {
        p for arg in args for p in _loose(arg, path)
    }  # a Union or Literal (whose values are no types)


def test_every_spec_field_is_typed_but_the_deliberately_open_ones():
    assert _loose(StudySpec, "") == LOOSE_BY_DESIGN
    assert _loose(dict[str, Any], "x") == {"x[*]"} and _loose(Union[int, list], "y") == {  # noqa: UP007
        "y"
    }  # the walk finds them


def test_variant_overlays_the_classic_grid(monkeypatch):
    monkeypatch.chdir(REPO)
    classic = load_spec("roberta-multilabel")
    variant = load_spec("roberta-multilabel", "imbalance")
    assert variant.name == "roberta-multilabel-imbalance" and variant.sampler.type == "tpe"
    assert {"loss", "pos_weight_power", "head_lr_multiplier"} <= set(variant.search_space)
    assert variant.model == classic.model and variant.training == classic.training
    assert load_spec("roberta-multilabel-imbalance") == variant  # a variant's study name finds it


def test_broken_variant_is_reported_at_load(tmp_path):
    path = _write(tmp_path, variants={"fast": {"training": {"epochs": 0}}})
    assert "variants.fast" in _error(path) and "epochs" in _error(path)


def test_soft_labels_need_the_agreement_columns(tmp_path):
    path = _write(
        tmp_path, search_space={"soft_label_weight": {"type": "float", "low": 0.0, "high": 1.0}}
    )
    assert "soft_label_weight needs data.agreement_suffix" in _error(path)
    ok = _write(
        tmp_path, data={"agreement_suffix": ":confidence"}, training={"soft_label_weight": 0.5}
    )
    assert load_spec(str(ok)).data_config("d").agreement_suffix == ":confidence"


LOSS_SPACE = {
    "loss": {"type": "categorical", "choices": ["bce", "focal"]},
    "focal_gamma": {"type": "float", "low": 0.5, "high": 3.0, "when": {"loss": "focal"}},
    "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True},
}


def test_conditional_parameter_is_suggested_only_when_it_applies(tmp_path):
    import optuna

    from hpo.search_space import replay, suggest

    spec = load_spec(str(_write(tmp_path, search_space=LOSS_SPACE)))
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=4))
    study.optimize(lambda t: float(len(suggest(t, spec.search_space))), n_trials=12)
    for t in study.trials:
        assert ("focal_gamma" in t.params) == (t.params["loss"] == "focal")
    assert {t.params["loss"] for t in study.trials} == {"bce", "focal"}
    # A retrained bce trial keeps the trainer's default gamma, whatever the trial once recorded.
    params = replay(spec, {"loss": "bce", "focal_gamma": 0.7, "learning_rate": 2e-4})
    assert params == {"loss": "bce", "learning_rate": 2e-4}
    assert spec.train_config("d", params).hyper.focal_gamma == 2.0


@pytest.mark.parametrize(
    "when, expected",
    [
        (
            {"losss": "focal"},
            "'losss' must be a categorical parameter listed before 'focal_gamma'",
        ),
        ({"learning_rate": 1e-4}, "'learning_rate' must be a categorical parameter"),
        (
            {"loss": ["focal", "asl"]},
            "search_space.focal_gamma.when.loss: ['asl'] not among its choices",
        ),
    ],
)
def test_bad_condition_is_named(tmp_path, when, expected):
    space = {**LOSS_SPACE, "focal_gamma": {**LOSS_SPACE["focal_gamma"], "when": when}}
    space = {"learning_rate": space.pop("learning_rate"), **space}  # learning_rate now comes first
    assert expected in _error(_write(tmp_path, search_space=space))


def test_grid_refuses_conditions(tmp_path):
    space = {
        "loss": LOSS_SPACE["loss"],
        "focal_gamma": {"type": "categorical", "choices": [1.0, 2.0], "when": {"loss": "focal"}},
    }
    assert "have `when`" in _error(_write(tmp_path, search_space=space, sampler={"type": "grid"}))


def test_a_bad_blend_is_one_line_naming_it(tmp_path):
    assert "blend.weights" in _error(_write(tmp_path, blend={"weights": [0.2, 1.5]}))
    unknown = _error(_write(tmp_path, blend={"models": ["ngrams", "tfidf"]}))
    assert "blend.models" in unknown and "choose from ngrams, embeddings" in unknown
    crossed = _write(tmp_path, blend={}, selection={"thresholds": "cross_fit"})
    assert "blend needs selection.thresholds: val" in _error(crossed)
    assert load_spec(str(_write(tmp_path, blend={}))).blend.weights[0] == 0.0
