"""`blend:` in a spec: the retrained model mixed with an n-gram model (trainers.ngram).

The n-gram model is fitted on the training split only; its weight in the mix is the candidate
whose mixed validation probabilities score best on the study's objective metric, and 0 (the
model alone) is always a candidate, so a blend is kept only where it helps on validation. The
thresholds are then chosen on the mixed validation probabilities, as for any delivered model.
"""

from __future__ import annotations

import logging

import numpy as np

from hpo.spec import BlendSpec
from hpo.stored import BlendRecord
from trainers.config import TrainConfig

log = logging.getLogger(__name__)


def fit_blend(
    config: TrainConfig,
    settings: BlendSpec,
    val_texts: list[str],
    y_val: np.ndarray,
    val_probs: np.ndarray,
):
    """(NgramBlend or None when weight 0 wins, the mixed validation probabilities, its record)."""
    from trainers.data import load_split
    from trainers.metrics import compute_metrics
    from trainers.ngram import NgramBlend, NgramModel, mix

    train = load_split(config.data.train_path, config.data, config.task)
    model = NgramModel.fit(train.texts, train.labels, config.task, seed=config.hyper.seed)
    ngram_probs = model.probabilities(val_texts)

    def score(probs: np.ndarray) -> float:
        return compute_metrics(config.task, y_val, probs, config.data.label_names)[config.monitor]

    by_weight = {w: score(mix(val_probs, ngram_probs, w)) for w in settings.weights}
    chosen = 0.0
    for w, value in by_weight.items():  # ascending: a tie keeps the smaller weight
        if config.improves(value, by_weight[chosen]):
            chosen = w
    for w, value in by_weight.items():
        log.info("n-gram blend at weight %.2f: validation %s %.4f%s", w, config.monitor, value,
                 "  <- kept" if w == chosen else "")  # fmt: skip
    record = BlendRecord(
        metric=config.monitor,
        weight=chosen,
        model_val_value=by_weight[0.0],
        ngram_val_value=score(ngram_probs),
        by_weight={f"{w:g}": v for w, v in by_weight.items()},
    )
    if chosen == 0.0:
        return None, val_probs, record
    return NgramBlend(model, chosen), mix(val_probs, ngram_probs, chosen), record
