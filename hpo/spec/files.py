"""Spec files: `studies/<name>.yaml` found by name, read as UTF-8 YAML that refuses repeated
keys, a named variant merged in, and validated into a StudySpec; every mistake one line naming
the file and the field."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from hpo.errors import SpecError
from hpo.spec.models import StudySpec

STUDIES_DIR = Path("studies")


def resolve_spec_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        return path
    return STUDIES_DIR / f"{name_or_path}.yaml"


@dataclass(frozen=True)
class SpecSource:
    """A validated spec with where it came from: the file, its text, the variant applied."""

    spec: StudySpec
    path: Path
    text: str
    variant: str | None = None

    @property
    def note_text(self) -> str:
        """What the study note shows: the file as written, or for a variant the spec it resolves to."""
        if self.variant is None:
            return self.text
        return f"# variant {self.variant!r} of {self.path}, resolved\n" + yaml.safe_dump(
            self.spec.model_dump(mode="json"), sort_keys=False
        )


def load_spec(name_or_path: str, variant: str | None = None) -> StudySpec:
    return load_spec_source(name_or_path, variant).spec


def load_spec_source(name_or_path: str, variant: str | None = None) -> SpecSource:
    path = resolve_spec_path(name_or_path)
    if not path.is_file() and variant is None and (found := _as_variant(name_or_path)):
        return load_spec_source(*found)  # "roberta-multilabel-imbalance" names a variant's study
    if not path.is_file():
        available = sorted(p.stem for p in STUDIES_DIR.glob("*.yaml"))
        what = "is a folder, not a spec file" if path.is_dir() else "no such study spec"
        raise SpecError(f"{path}: {what}; available: {', '.join(available) or 'none'}")
    text = read_spec_text(path)
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader that refuses repeated keys
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML ({_yaml_problem(e)})") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a study spec is a YAML mapping, but got {type(raw).__name__}")
    spec = _validate(raw, path)
    for name in spec.variants:  # a broken variant is reported now, not on the day it is run
        _validate(_with_variant(raw, name), path, f"variants.{name}: ")
    if variant is None:
        return SpecSource(spec, path, text)
    if variant not in spec.variants:
        raise SpecError(
            f"{path}: no variant {variant!r}; variants: {', '.join(spec.variants) or 'none'}"
        )
    return SpecSource(_validate(_with_variant(raw, variant), path), path, text, variant)


def read_spec_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SpecError(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SpecError(
            f"{path}: not UTF-8 text (byte {data[e.start : e.start + 1]!r} at offset {e.start}); save the spec as UTF-8"
        ) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load keeps the last of two equal keys without a word: a spec that sets
    `learning_rate` twice would silently search only one of them."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            repeated = key in seen
        except TypeError:  # an unhashable key: the constructor below names the problem
            break
        if repeated:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def _yaml_problem(e: yaml.YAMLError) -> str:
    problem = getattr(e, "problem", None)
    mark = getattr(e, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _as_variant(study_name: str) -> tuple[str, str] | None:
    parts = study_name.split("-")
    for i in range(len(parts) - 1, 0, -1):
        base, variant = "-".join(parts[:i]), "-".join(parts[i:])
        if resolve_spec_path(base).is_file():
            return base, variant
    return None


def _validate(raw: dict, path: Path, prefix: str = "") -> StudySpec:
    try:
        return StudySpec.model_validate(raw)
    except ValidationError as e:
        raise SpecError(f"{path}: {prefix}{first_error(e)}") from None


def _with_variant(raw: dict, variant: str) -> dict:
    """The spec with the variant's overlay merged in (mappings merge, anything else replaces)."""
    overlay = raw.get("variants", {}).get(variant)
    if not isinstance(overlay, dict):
        return raw
    merged = _deep_merge({k: v for k, v in raw.items() if k != "variants"}, overlay)
    # A parameter's definition is replaced whole: merging a float range into a choice list is nonsense.
    merged["search_space"] = {**raw.get("search_space", {}), **overlay.get("search_space", {})}
    merged["name"] = f"{raw.get('name')}-{variant}"
    return merged


def _deep_merge(base: dict, overlay: dict) -> dict:
    out = dict(base)
    for key, value in overlay.items():
        out[key] = (
            _deep_merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


def validated(model: type[StudySpec], raw: dict, where: str) -> StudySpec:
    """`raw` validated as a spec, or one line starting with `where` (a file, an argument)."""
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise SpecError(f"{where}: {first_error(e)}") from None


def first_error(e: ValidationError) -> str:
    """The first problem pydantic found, as `field a.b: what (got x)`."""
    err = e.errors()[0]
    loc = ".".join(
        str(p) for p in err["loc"] if not str(p).startswith(("function-after", "tagged-union"))
    )
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field (remove it or check its spelling)"
    elif "input" in err and err["type"] not in ("missing",) and not isinstance(err["input"], dict):
        msg = f"{msg} (got {err['input']!r})"
    return f"field {loc}: {msg}" if loc else msg


def default_data_dir(explicit: str | Path | None = None) -> Path:
    """--data-dir (argparse checked it), else $DATA_DIR, else data/."""
    from_env = os.environ.get("DATA_DIR")
    if explicit is None and from_env and Path(from_env).exists() and not Path(from_env).is_dir():
        raise SpecError(f"DATA_DIR={from_env}: is a file, not the folder that holds the data sets")
    return Path(explicit or from_env or "data")
