"""Deployment variants of a retrained model (`hpo compress`): int8, ONNX Runtime fp32 and int8,
a structurally pruned model and a distilled student, each with thresholds re-tuned on
validation, scored once on test, timed on CPU, and compared in runs/<study>/deploy/report.md.

variants  the variants' names (plain Python: the CLI help lists them)
settings  the spec's `compress:` section (no torch)
layout    names and the record each variant directory carries (no torch)
build     one builder per variant; onnx, prune, distill hold the heavier ones
runtime   loads any variant directory (or the fp32 model) as a predictor for `hpo predict`
measure   validation thresholds, val/test scores with intervals, size and speed of a variant
report    the deployment report and the trade-off rule
compress  the whole step, from runs/<study>/best/ to runs/<study>/deploy/
"""
