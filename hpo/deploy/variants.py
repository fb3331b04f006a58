"""The deployment variants' names, in the order `hpo compress` builds them. Plain Python (no
pydantic, no torch): the command line lists them in its help without importing the settings."""

from __future__ import annotations

from typing import Literal

Variant = Literal["int8", "onnx", "onnx-int8", "pruned", "distilled", "distilled-onnx-int8"]
# distilled-onnx-int8 is the distilled student exported to ONNX and quantised: the two savings
# multiply, and it is built from the distilled variant (which comes first).
VARIANTS: tuple[Variant, ...] = (
    "int8",
    "onnx",
    "onnx-int8",
    "pruned",
    "distilled",
    "distilled-onnx-int8",
)
FP32 = "fp32"  # the retrained model itself, the row every variant is compared with
