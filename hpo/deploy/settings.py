"""The spec's `compress:` section: which variants `hpo compress` builds and how. Pydantic only
(no torch), so a spec is validated before anything is built."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hpo.deploy.variants import VARIANTS, Variant
from hpo.errors import HpoError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TeacherLoss(_Strict):
    """Knowledge distillation on the train split: alpha · T² · soft loss against the teacher at
    temperature T + (1 − alpha) · the study's own loss against the labels."""

    temperature: float = Field(2.0, gt=0)
    alpha: float = Field(
        0.5,
        ge=0,
        le=1,
        description="weight of the teacher's soft term; 0 trains on the labels alone",
    )
    epochs: int = Field(3, ge=1)
    learning_rate: float | None = Field(
        None, gt=0, description="default: the retrained trial's learning rate"
    )
    batch_size: int | None = Field(
        None, ge=1, description="default: the retrained trial's batch size"
    )


class PruneSpec(_Strict):
    """Structured pruning by gradient × activation importance on train, then a recovery
    fine-tune on train towards the unpruned model (the distillation loss)."""

    heads_kept: float = Field(
        0.75, gt=0, le=1, description="share of each layer's attention heads kept (at least one)"
    )
    neurons_kept: float = Field(
        0.5, gt=0, le=1, description="share of each layer's feed-forward neurons kept"
    )
    vocabulary: bool = Field(
        True, description="drop word-embedding rows of tokens the train split never uses"
    )
    importance_texts: int = Field(
        1024, ge=32, description="train texts the importance is measured on"
    )
    recovery: TeacherLoss = TeacherLoss(epochs=1)


class DistillSpec(TeacherLoss):
    """A student of the same family: the teacher with every other encoder layer (1, 3, 5 of 6),
    trained towards the teacher's soft probabilities and the labels."""

    layers: list[int] | Literal["every_other"] = "every_other"


class CompressSpec(_Strict):
    variants: list[Variant] = Field(default_factory=lambda: list(VARIANTS))
    prune: PruneSpec = PruneSpec()
    distill: DistillSpec = DistillSpec()
    tolerance: float = Field(
        0.005,
        ge=0,
        description="the trade-off rule: the fastest variant whose validation headline metric is within this of fp32's",
    )
    single_texts: int = Field(
        200,
        ge=10,
        description="validation texts timed one at a time for the batch-1 and latency figures",
    )
    resamples: int = Field(1000, ge=0, description="bootstrap resamples for the 95 % intervals")


def settings_with(
    settings: CompressSpec,
    variants: list[str] | None = None,
    temperature: float | None = None,
    alpha: float | None = None,
    distill_epochs: int | None = None,
    resamples: int | None = None,
) -> CompressSpec:
    """The spec's settings with the command line's flags over them, validated as the spec is."""
    raw = settings.model_dump()
    distill = {"temperature": temperature, "alpha": alpha, "epochs": distill_epochs}
    raw["distill"].update({k: v for k, v in distill.items() if v is not None})
    if variants is not None:
        raw["variants"] = variants
    if resamples is not None:
        raw["resamples"] = resamples
    try:
        return CompressSpec.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise HpoError(f"hpo compress: {where}: {err['msg']} (got {err.get('input')!r})") from None
