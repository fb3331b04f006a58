"""The `distilled` variant: a shallower student of the same family, its layers copied from the
teacher (every other one by default: 1, 3, 5 of 6, so it ends with the layer the head was trained
on; embeddings and head copied too), trained on the train split only towards the teacher's soft
probabilities at temperature T mixed with the labels (trainers.distill). Validation only picks
the student's best epoch; it is saved like the fp32 model (Hugging Face format)."""

from __future__ import annotations

import copy
from pathlib import Path

from hpo.deploy.layout import VariantRecord
from hpo.deploy.settings import DistillSpec
from hpo.deploy.support import Source, Teacher


def build_distilled(source: Source, target: Path, settings: DistillSpec) -> VariantRecord:
    from trainers.checkpoint import save_best
    from trainers.ensemble import members_of
    from trainers.shrink import encoder_layers, every_other_layer, keep_layers, parameter_count

    teacher = Teacher.load(source)
    first = members_of(teacher.best.model)[0]  # a seed ensemble teaches a copy of one member
    n_layers = len(encoder_layers(first))
    layers = (
        every_other_layer(n_layers) if settings.layers == "every_other" else list(settings.layers)
    )
    student = copy.deepcopy(first)
    keep_layers(student, layers)
    student, best, chosen = teacher.teach(
        source.config, student, teacher.best.tokenizer, settings, "distillation"
    )
    save_best(
        target,
        student.cpu(),
        teacher.best.tokenizer,
        teacher.best.labels,
        None,
        teacher.best.extractor,
        teacher.best.blend,  # the student replaces the transformer; the blend stays
    )
    details = {"teacher_layers": n_layers, "student_layers": layers, "teacher_parameters": parameter_count(teacher.best.model),
               "temperature": chosen.temperature, "alpha": chosen.alpha, "epochs": chosen.epochs, "best_epoch": best["epoch"],
               "learning_rate": chosen.learning_rate, "batch_size": chosen.batch_size, "trained_on": "train split only"}  # fmt: skip
    return VariantRecord(
        variant="distilled",
        format="transformers",
        parameters=parameter_count(student),
        details=details,
    )
