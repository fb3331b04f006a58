"""ONNX export of a classifier and its ONNX Runtime int8 form.

Exported with torch.onnx's TorchScript-based exporter (`dynamo=False`): the dynamo exporter
needs onnxscript, which this project does not install, and the traced BERT graph runs in ONNX
Runtime unchanged. Batch and sequence length are dynamic axes, so length-sorted batches are
padded only to their longest text. The int8 model is onnxruntime.quantization's dynamic
quantisation: int8 weights per output channel, activations quantised per batch.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

MODEL_FILE = "model.onnx"
TOLERANCE = 1e-3  # largest |logit difference| to the PyTorch model accepted after export


def export_onnx(model, directory: Path, n_features: int = 0) -> Path:
    """Export `model` (a classifier answering `model(**inputs).logits`) to directory/model.onnx
    and check its logits against PyTorch's on a padded example batch."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, features=None):
            extra = {"features": features} if features is not None else {}
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, **extra).logits

    wrapper = Logits(model.cpu()).eval()  # export restores the wrapper's mode: an untouched one is training, dropout on
    inputs = _example_inputs(model.get_input_embeddings().num_embeddings, n_features)
    names = list(inputs)
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}, "logits": {0: "batch"}}
    if n_features:
        axes["features"] = {0: "batch"}
    path = Path(directory) / MODEL_FILE
    tensors = tuple(torch.from_numpy(v) for v in inputs.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
        torch.onnx.export(wrapper, tensors, str(path), dynamo=False, input_names=names, output_names=["logits"],
                          dynamic_axes=axes, opset_version=17, do_constant_folding=True)  # fmt: skip
    with torch.inference_mode():
        expected = wrapper(*tensors).numpy()
    got = session(path).run(["logits"], inputs)[0]
    if not np.allclose(got, expected, atol=TOLERANCE):
        raise RuntimeError(f"{path}: ONNX Runtime's logits differ from PyTorch's by {np.abs(got - expected).max():.2g}")
    return path


def quantize_onnx(source: Path, target: Path) -> Path:
    """Dynamic int8 quantisation of an exported model's constant-weight MatMuls (per channel);
    the attention's activation × activation products stay fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True, extra_options={"MatMulConstBOnly": True})
    return target


def session(path: Path):
    """An ONNX Runtime CPU session on every core this process may use, all graph optimisations on."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _example_inputs(vocab_size: int, n_features: int) -> dict[str, np.ndarray]:
    """Two texts of 7 and 3 tokens, the second padded: the exported graph must honour the mask."""
    rng = np.random.default_rng(0)
    ids = rng.integers(1, min(vocab_size, 1000), size=(2, 7), dtype=np.int64)
    mask = np.ones_like(ids)
    ids[1, 3:], mask[1, 3:] = 0, 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    if n_features:
        inputs["features"] = rng.standard_normal((2, n_features)).astype(np.float32)
    return inputs
