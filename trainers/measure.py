"""A trained run's best model measured as it would be deployed, for studies that trade quality
against speed or size: the model (dynamically quantised to int8 when `hyper.int8`) predicts
the validation split again, and its metrics, CPU texts/s at batch 64 (length-sorted, tokenising
included, best of 2 passes), size on disk and parameter count are returned together.

The speed is wall-clock on the trial's own threads: trials running side by side slow each other
down, so compare speeds of trials run one at a time (or on identical, otherwise idle workers).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from trainers.checkpoint import BestModel, LabelInfo
from trainers.evaluate import predict_probabilities
from trainers.loop import Run
from trainers.metrics import compute_metrics
from trainers.objectives import OBJECTIVE_METRICS
from trainers.shrink import parameter_count
from trainers.speed import texts_per_second


def deployed_figures(run: Run) -> dict[str, float]:
    config = run.config
    model = run.model.eval()
    if config.hyper.int8:
        from trainers.quantize import quantize_int8

        model = quantize_int8(model)
    best = BestModel(model, run.tokenizer, LabelInfo.of(config), None, run.extractor)
    probs, _ = predict_probabilities(best, run.val.texts, batch_size=64)
    metrics = compute_metrics(config.task, run.val.labels, probs, config.data.label_names)
    speed = texts_per_second(
        lambda texts, size: predict_probabilities(best, texts, size)[0],
        run.val.texts,
        64,
        repeats=2,
    )
    figures = {
        k: float(metrics[k]) for k in OBJECTIVE_METRICS if isinstance(metrics.get(k), float)
    }
    return {
        **figures,
        "texts_per_second": speed,
        "model_size_mb": _size_mb(model, run.model),
        "parameters": float(parameter_count(run.model)),
    }


def _size_mb(model, float_model) -> float:
    """Bytes of the weights as `hpo compress` stores them (int8: int8 tensors and scales)."""
    with tempfile.TemporaryDirectory(prefix="measure-") as tmp:
        if model is float_model:
            model.save_pretrained(tmp)
        else:
            from trainers.quantize import save_int8

            save_int8(model, float_model, Path(tmp))
        return sum(f.stat().st_size for f in Path(tmp).rglob("*.safetensors")) / 2**20
