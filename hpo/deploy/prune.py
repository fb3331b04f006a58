"""The `pruned` variant: attention heads and feed-forward neurons removed by their importance on
train (gradient × activation, trainers.importance), word-embedding rows of tokens train never
uses removed with them (trainers.vocab), then a short recovery fine-tune on train towards the
unpruned model's soft probabilities and the labels (trainers.distill).

Saved as architecture/ (the original config, vocabulary size updated), pruning.json (heads and
neurons kept per layer: a config cannot say that heads differ per layer) and model.safetensors.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from hpo.deploy.layout import VariantRecord
from hpo.deploy.settings import PruneSpec
from hpo.deploy.support import Source, Teacher, copy_shared_files

log = logging.getLogger(__name__)
SHAPE_FILE = "pruning.json"
WEIGHTS_FILE = "model.safetensors"


def build_pruned(source: Source, target: Path, settings: PruneSpec) -> VariantRecord:
    from trainers.ensemble import members_of
    from trainers.shrink import parameter_count

    teacher = Teacher.load(source)
    train = teacher.train
    before = parameter_count(
        members_of(teacher.best.model)[0]
    )  # the member the copy is pruned from
    model, removed = _pruned_copy(teacher.best, train, source, settings)
    tokenizer = teacher.best.tokenizer
    copy_shared_files(source.best_dir, target, tokenizer=not settings.vocabulary)
    if settings.vocabulary:
        removed["vocabulary"] = _prune_vocabulary(model, source, target, train.texts)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(target, local_files_only=True)
    r = settings.recovery
    model, best, recovery = teacher.teach(source.config, model, tokenizer, r, "recovery")
    save_pruned(model.cpu(), target)
    after = parameter_count(model)
    details = {"importance": "gradient × activation on train", "importance_texts": min(settings.importance_texts, len(train.ids)),
               "removed": removed, "parameters_before": before, "parameters_removed": before - after,
               "recovery": {"epochs": r.epochs, "best_epoch": best["epoch"], "temperature": r.temperature, "alpha": r.alpha,
                            "learning_rate": recovery.learning_rate}}  # fmt: skip
    return VariantRecord(variant="pruned", format="pruned", parameters=after, details=details)


def _pruned_copy(teacher, train, source: Source, settings: PruneSpec):
    """A copy of the teacher (of its first member, for a seed ensemble) with each layer's least
    important heads and neurons removed."""
    import copy

    from trainers.ensemble import members_of
    from trainers.importance import measure_importance
    from trainers.losses import build_loss
    from trainers.shrink import encoder_layers, prune_heads, prune_neurons

    config = source.config
    model = copy.deepcopy(members_of(teacher.model)[0])
    rows = np.random.default_rng(config.hyper.seed).permutation(len(train.ids))[
        : settings.importance_texts
    ]
    sample = _subset(train, rows)
    loss = build_loss(
        config.task, config.hyper, train.labels, num_classes=len(config.data.label_names)
    )
    importance = measure_importance(
        model, sample, loss, teacher.tokenizer.pad_token_id, batch_size=config.hyper.batch_size
    )
    heads_removed = neurons_removed = 0
    for i, layer in enumerate(encoder_layers(model)):
        n_heads, n_neurons = (
            layer.attention.self.num_attention_heads,
            layer.intermediate.dense.out_features,
        )
        keep_heads = max(1, round(settings.heads_kept * n_heads))
        keep_neurons = max(1, math.ceil(settings.neurons_kept * n_neurons))
        prune_heads(layer, importance.top_heads(i, keep_heads))
        prune_neurons(layer, importance.top_neurons(i, keep_neurons))
        heads_removed += n_heads - keep_heads
        neurons_removed += n_neurons - keep_neurons
    layers = len(encoder_layers(model))
    return model, {
        "heads": f"{heads_removed} of {layers * n_heads}",
        "neurons": f"{neurons_removed} of {layers * n_neurons}",
    }


def _prune_vocabulary(model, source: Source, target: Path, texts: list[str]) -> str:
    from trainers.vocab import kept_token_ids, prune_vocabulary, write_pruned_tokenizer

    kept = kept_token_ids(source.best_dir, texts, source.config.model.max_length)
    total = model.get_input_embeddings().num_embeddings
    prune_vocabulary(model, kept)
    write_pruned_tokenizer(source.best_dir, target, kept)
    return f"{total - len(kept)} of {total} tokens"


def _subset(split, rows: np.ndarray):
    from trainers.batching import TokenizedSplit

    return TokenizedSplit(
        ids=[split.ids[i] for i in rows], labels=split.labels[rows], texts=[split.texts[i] for i in rows],
        features=None if split.features is None else split.features[rows],
    )  # fmt: skip


def save_pruned(model, directory: Path) -> None:
    from safetensors.torch import save_file

    from trainers.shrink import encoder_shape
    from trainers.skeleton import save_architecture

    save_architecture(model, directory)
    (Path(directory) / SHAPE_FILE).write_text(json.dumps(encoder_shape(model).as_json(), indent=2))
    save_file(
        {k: v.detach().contiguous() for k, v in model.state_dict().items()},
        str(Path(directory) / WEIGHTS_FILE),
    )


def load_pruned(directory: Path):
    """The architecture, cut to the saved per-layer shape, with the saved weights."""
    from safetensors.torch import load_file

    from trainers.shrink import EncoderShape, apply_shape
    from trainers.skeleton import empty_model

    model = empty_model(directory)
    apply_shape(
        model, EncoderShape.from_json(json.loads((Path(directory) / SHAPE_FILE).read_text()))
    )
    model.load_state_dict(load_file(str(Path(directory) / WEIGHTS_FILE)))
    return model.eval()
