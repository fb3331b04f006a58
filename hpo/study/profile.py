"""The data set's profile, computed once before a study's first trial and stored in the study,
and the audit file of a split file (which part each row went to).

The numbers are trainers.profile's (pure data); this module only gathers a spec's splits and
tokenizer for it, adds the all-majority baseline and writes the files.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hpo import stored
from hpo.spec import StudySpec
from hpo.study.preflight import DataFacts, preflight
from trainers.profile import DataProfile

SPLIT_NAMES = ("train", "val", "test")


def profile_study(spec: StudySpec, data_dir: Path) -> DataProfile:
    """Every split of the spec's data, its tokenizer's lengths and the majority baseline."""
    from hpo.report.baseline import majority_baseline
    from trainers.data import load_split
    from trainers.model import load_tokenizer
    from trainers.profile import profile_splits, token_lengths

    data = spec.data_config(data_dir)
    paths = dict(zip(SPLIT_NAMES, (data.train_path, data.val_path, data.test_path), strict=True))
    splits = {
        name: load_split(path, data, spec.task) for name, path in paths.items() if path is not None
    }
    tokenizer = load_tokenizer(spec.model)
    lengths = {name: token_lengths(split.texts, tokenizer) for name, split in splits.items()}
    profile = profile_splits(splits, spec.task, data.label_names, lengths, spec.model.max_length)
    baseline = stored.json_safe(majority_baseline(spec, data_dir))
    return profile.model_copy(
        update={"baseline_val": {k: v for k, v in baseline.items() if not isinstance(v, dict)}}
    )


def write_split_file(spec: StudySpec, data_dir: Path, folder: Path) -> Path | None:
    """runs/<study>/split.csv for a spec that splits one file: every row's part, for auditing."""
    from trainers.data import split_table

    data = spec.data_config(data_dir)
    if data.split is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / stored.SPLIT_FILE
    split_table(data, spec.task).to_csv(path, index=False)
    return path


def prepare_data(spec: StudySpec, data_dir: Path, run_folder: Path) -> DataFacts:
    """What `hpo study` and `hpo workers` learn of the data before the first trial: the
    preflight checks, the profile, and the split file's audit next to the study's runs."""
    facts = preflight(spec, data_dir)
    write_split_file(spec, data_dir, run_folder)
    return dataclasses.replace(facts, profile=profile_study(spec, data_dir))
