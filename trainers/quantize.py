"""PyTorch dynamic int8 quantisation of a classifier's Linear layers, stored as plain tensors.

Weights become int8 with one scale per output channel; activations are quantised on the fly
per batch (fbgemm/x86 kernels). A quantised model's state dict holds packed C++ objects that
only pickle can store, so the int8 tensors, scales and zero points are written to safetensors
instead and packed again at load time: the directory stays data-only.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

from trainers.errors import TrainerError
from trainers.skeleton import empty_model, save_architecture

INT8_FILE = "int8.safetensors"
_INT8, _SCALES, _ZEROS, _BIAS = ".int8_weight", ".scales", ".zero_points", ".bias"


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of `model` (on CPU) with every Linear dynamically quantised to int8.

    torch.ao.quantization announces its move to torchao but still ships (and runs) in torch
    2.13; torchao is not a dependency, so its deprecation notices are silenced here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        return quantize_dynamic(
            copy.deepcopy(model).cpu().eval(),
            {nn.Linear: per_channel_dynamic_qconfig},
            dtype=torch.qint8,
        )


def save_int8(quantized: nn.Module, float_model: nn.Module, directory: Path) -> Path:
    """Write the architecture of `float_model` and the tensors of `quantized` under `directory`."""
    directory = Path(directory)
    save_architecture(float_model, directory)
    tensors: dict[str, torch.Tensor] = {}
    for name, module in quantized.named_modules():
        if isinstance(module, DynamicLinear):
            weight, bias = module._packed_params._weight_bias()
            tensors[name + _INT8] = weight.int_repr().contiguous()
            tensors[name + _SCALES] = weight.q_per_channel_scales().float().contiguous()
            tensors[name + _ZEROS] = (
                weight.q_per_channel_zero_points().to(torch.int8).contiguous()
            )  # qint8: within int8
            if bias is not None:
                tensors[name + _BIAS] = bias.detach().contiguous()
    linears = tuple(f"{n}." for n, m in quantized.named_modules() if isinstance(m, DynamicLinear))
    for key, value in quantized.state_dict().items():
        if isinstance(value, torch.Tensor) and not key.startswith(linears):
            tensors[key] = value.detach().contiguous()
    path = directory / INT8_FILE
    save_file(tensors, str(path))
    return path


def load_int8(directory: Path) -> nn.Module:
    """Rebuild the architecture, quantise it, then put the saved int8 weights in place."""
    model = quantize_int8(empty_model(directory))
    tensors = load_file(str(Path(directory) / INT8_FILE))
    for name, module in model.named_modules():
        if not isinstance(module, DynamicLinear):
            continue
        if name + _INT8 not in tensors:
            raise TrainerError(f"{directory / INT8_FILE}: no int8 weight for {name}")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
            weight = torch._make_per_channel_quantized_tensor(tensors.pop(name + _INT8), tensors.pop(name + _SCALES).double(),
                                                               tensors.pop(name + _ZEROS).long(), 0)  # fmt: skip
        module.set_weight_bias(weight, tensors.pop(name + _BIAS, None))
    _copy_rest(model, tensors, directory)
    return model.eval()


@torch.no_grad()
def _copy_rest(model: nn.Module, tensors: dict[str, torch.Tensor], directory: Path) -> None:
    """Every tensor that is not a quantised Linear's (embeddings, norms, ...), copied by name. A
    quantised Linear reads keys of its own in `load_state_dict`, so that is not used here."""
    linears = tuple(f"{n}." for n, m in model.named_modules() if isinstance(m, DynamicLinear))
    targets = {
        k: v
        for k, v in model.state_dict(keep_vars=True).items()
        if isinstance(v, torch.Tensor) and not k.startswith(linears)
    }
    missing, unexpected = sorted(set(targets) - set(tensors)), sorted(set(tensors) - set(targets))
    if missing or unexpected:
        raise TrainerError(
            f"{directory / INT8_FILE}: weights do not match the architecture (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for name, value in tensors.items():
        targets[name].copy_(value)
