"""`blend:` in a spec: the retrained model mixed with side models (trainers.blend).

Each side model is fitted on the training split only. The weights in the mix are the candidate
(BlendSpec.candidates) whose mixed validation probabilities score best on the study's objective
metric; all weights 0 (the model alone) is always a candidate, so a side model is kept only
where it helps on validation. The thresholds are then chosen on the mixed validation
probabilities, as for any delivered model.
"""

from __future__ import annotations

import logging

import numpy as np

from hpo.spec import BlendSpec
from hpo.stored import BlendRecord, weights_key
from trainers.checkpoint import NGRAMS
from trainers.config import TrainConfig

log = logging.getLogger(__name__)


def fit_blend(
    config: TrainConfig,
    settings: BlendSpec,
    val_texts: list[str],
    y_val: np.ndarray,
    val_probs: np.ndarray,
):
    """(Blend or None when the model alone wins, the mixed validation probabilities, its record)."""
    from trainers.blend import Blend, mix
    from trainers.data import load_split
    from trainers.metrics import compute_metrics

    train = load_split(config.data.train_path, config.data, config.task)
    sides = {kind: _fit(kind, train, config, settings) for kind in settings.models}
    side_probs = {kind: model.probabilities(val_texts) for kind, model in sides.items()}

    def score(probs: np.ndarray) -> float:
        return compute_metrics(config.task, y_val, probs, config.data.label_names)[config.monitor]

    candidates = settings.candidates()
    by_weights = {weights_key(w): score(mix(val_probs, side_probs, w)) for w in candidates}
    chosen = candidates[0]  # all 0: the model alone
    for weights in candidates:  # the smallest total first: a tie keeps the lighter blend
        if config.improves(by_weights[weights_key(weights)], by_weights[weights_key(chosen)]):
            chosen = weights
    record = BlendRecord(
        metric=config.monitor,
        weights=chosen,
        model_val_value=by_weights[weights_key(candidates[0])],
        side_val_values={kind: score(p) for kind, p in side_probs.items()},
        by_weights=by_weights,
    )
    log.info("blend: validation %s %.4f for the model alone, %.4f at %s (of %d candidates); side models alone: %s",
             config.monitor, record.model_val_value, by_weights[weights_key(chosen)], weights_key(chosen),
             len(candidates), ", ".join(f"{k} {v:.4f}" for k, v in record.side_val_values.items()))  # fmt: skip
    if not record.kept:
        return None, val_probs, record
    blend = Blend({kind: (sides[kind], w) for kind, w in record.kept.items()})
    return blend, mix(val_probs, side_probs, chosen), record


def _fit(kind: str, train, config: TrainConfig, settings: BlendSpec):
    seed = config.hyper.seed
    if kind == NGRAMS:
        from trainers.ngram import NgramModel

        return NgramModel.fit(train.texts, train.labels, config.task, seed=seed)
    from trainers.embeddings import EmbeddingModel, SentenceEncoder

    encoder = SentenceEncoder.load(settings.encoder, config.model.max_length)
    return EmbeddingModel.fit(train.texts, train.labels, config.task, encoder, seed=seed)
