"""ONNX export of a classifier and its ONNX Runtime int8 form.

Exported with torch.onnx's TorchScript-based exporter (`dynamo=False`): the dynamo exporter
needs onnxscript, which this project does not install, and the traced BERT graph runs in ONNX
Runtime unchanged. Batch and sequence length are dynamic axes, so length-sorted batches are
padded only to their longest text. A BERT-family model is traced with eager attention, whose
graph onnxruntime.transformers' optimizer recognises: attention, embedding + LayerNorm and
bias + GELU each become one fused kernel (the SDPA graph fuses only the last). Residual +
LayerNorm is left as Add and LayerNormalization, and sessions keep ONNX Runtime from fusing
them at load: its fused SkipLayerNormalization kernel was the slower one on CPU (28 % of
onnx-int8's kernel time on UCC test texts; unfused, the whole model ran 24-30 % faster,
measured in one run on MiniLM). The int8 model is onnxruntime.quantization's dynamic
quantisation of that graph: int8 weights per output channel, activations quantised per batch;
the fused attention becomes ONNX Runtime's QAttention.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from pathlib import Path

import numpy as np

MODEL_FILE = "model.onnx"
FUSABLE = (
    "bert",
    "roberta",
    "xlm-roberta",
    "camembert",
    "electra",
)  # encoders onnxruntime's BERT optimizer handles
UNFUSED_AT_LOAD = ["SkipLayerNormFusion"]  # ONNX Runtime's own optimiser, when a session loads
TOLERANCE = 1e-3  # largest |logit difference| to the PyTorch model accepted after export


def export_onnx(model, directory: Path, n_features: int = 0) -> tuple[Path, dict[str, int]]:
    """Export `model` (a classifier answering `model(**inputs).logits`) to directory/model.onnx,
    fuse its transformer kernels where the optimizer knows the architecture, and check its
    logits against PyTorch's on a padded example batch. Returns the path and the fused
    operators (empty when nothing was fused)."""
    import copy

    import torch

    from trainers.ensemble import members_of
    from trainers.shrink import backbone

    class Logits(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, features=None):
            extra = {"features": features} if features is not None else {}
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, **extra).logits

    reference = Logits(
        model.cpu()
    ).eval()  # export restores the wrapper's mode: an untouched one is training, dropout on
    traced = copy.deepcopy(model)
    for member in members_of(traced):  # a seed ensemble exports every member into one graph
        with contextlib.suppress(ValueError, AttributeError):
            backbone(member).set_attn_implementation("eager")
    wrapper = Logits(traced).eval()
    inputs = _example_inputs(model.get_input_embeddings().num_embeddings, n_features)
    names = list(inputs)
    axes = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "sequence"},
        "logits": {0: "batch"},
    }
    if n_features:
        axes["features"] = {0: "batch"}
    path = Path(directory) / MODEL_FILE
    tensors = tuple(torch.from_numpy(v) for v in inputs.values())
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # the TorchScript exporter's deprecation and tracer notices
        torch.onnx.export(wrapper, tensors, str(path), dynamo=False, input_names=names, output_names=["logits"],
                          dynamic_axes=axes, opset_version=17, do_constant_folding=True)  # fmt: skip
    members = members_of(model)
    # onnxruntime's BERT fusions expect one encoder per graph (their embedding fusion fails on a
    # seed ensemble's several); an ensemble keeps ONNX Runtime's generic graph optimisations only.
    fused = _fuse(path, backbone(members[0]).config) if len(members) == 1 else {}
    with torch.inference_mode():
        expected = reference(*tensors).numpy()
    got = session(path).run(["logits"], inputs)[0]
    if not np.allclose(got, expected, atol=TOLERANCE):
        raise RuntimeError(
            f"{path}: ONNX Runtime's logits differ from PyTorch's by {np.abs(got - expected).max():.2g}"
        )
    return path, fused


def _fuse(path: Path, config) -> dict[str, int]:
    """onnxruntime.transformers' BERT fusions, in place; {} for an architecture it does not know."""
    if config.model_type not in FUSABLE:
        return {}
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_skip_layer_norm = False  # the unfused pair runs faster (module docstring)
    with warnings.catch_warnings(), _quiet_root_logger():
        warnings.simplefilter("ignore")
        optimized = optimize_model(
            str(path),
            model_type="bert",
            num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size,
            optimization_options=options,
        )
    optimized.save_model_to_file(str(path))
    return {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}


def quantize_onnx(source: Path, target: Path) -> Path:
    """Dynamic int8 quantisation of an exported model's constant-weight MatMuls (per channel);
    the attention's activation × activation products stay fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # DefaultTensorType: shape inference cannot type the fused (com.microsoft) operators' outputs.
    extra = {"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT}
    with _quiet_root_logger():
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options=extra,
        )
    return target


@contextlib.contextmanager
def _quiet_root_logger():
    """onnxruntime's optimizer and quantizer log every fused node and tensor at INFO, through the
    root logger the CLI configures: only their warnings are worth a user's screen."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


def session(path: Path, profile_prefix: Path | None = None):
    """An ONNX Runtime CPU session on every core this process may use, all graph optimisations
    on but the residual + LayerNorm fusion (module docstring); with `profile_prefix`, ONNX
    Runtime's profiler writes every kernel's time to a JSON file there (`end_profiling()`)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(
        str(path),
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=UNFUSED_AT_LOAD,
    )


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
