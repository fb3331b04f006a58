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
from hpo.deploy.support import Source, epoch_printer


def build_distilled(source: Source, target: Path, settings: DistillSpec) -> VariantRecord:
    from trainers.checkpoint import load_best, save_best
    from trainers.distill import DistillSettings, fit_student, student_run, teacher_logits
    from trainers.loop import load_tokenized
    from trainers.shrink import encoder_layers, every_other_layer, keep_layers, parameter_count

    teacher = load_best(source.best_dir, device="cpu")
    config = source.config
    train = load_tokenized(config, teacher.tokenizer, config.data.train_path, teacher.extractor)
    logits = teacher_logits(teacher.model, train, teacher.tokenizer.pad_token_id)
    n_layers = len(encoder_layers(teacher.model))
    layers = (
        every_other_layer(n_layers) if settings.layers == "every_other" else list(settings.layers)
    )
    student = copy.deepcopy(teacher.model)
    keep_layers(student, layers)
    chosen = DistillSettings(settings.temperature, settings.alpha, settings.epochs, settings.learning_rate or config.hyper.learning_rate,
                             settings.batch_size or config.hyper.batch_size)  # fmt: skip
    run = student_run(config, student, teacher.tokenizer, teacher.extractor, logits, chosen)
    student, best = fit_student(
        run, config.monitor, config.monitor_mode == "max", epoch_printer("distillation")
    )
    save_best(target, student.cpu(), teacher.tokenizer, teacher.labels, None, teacher.extractor)
    details = {"teacher_layers": n_layers, "student_layers": layers, "teacher_parameters": parameter_count(teacher.model),
               "temperature": chosen.temperature, "alpha": chosen.alpha, "epochs": chosen.epochs, "best_epoch": best["epoch"],
               "learning_rate": chosen.learning_rate, "batch_size": chosen.batch_size, "trained_on": "train split only"}  # fmt: skip
    return VariantRecord(
        variant="distilled",
        format="transformers",
        parameters=parameter_count(student),
        details=details,
    )
