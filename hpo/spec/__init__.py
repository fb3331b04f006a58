"""Study specs: YAML in `studies/`, validated into typed models (hpo.spec.models) by
hpo.spec.files.

Every mistake becomes one line naming the file and the field; the spec is the only place a
user writes, so it is checked before any trial starts.
"""

from __future__ import annotations

from hpo.spec.files import (
    STUDIES_DIR,
    SpecSource,
    default_data_dir,
    first_error,
    load_spec,
    load_spec_source,
    read_spec_text,
    resolve_spec_path,
    validated,
)
from hpo.spec.models import (
    DEFAULT_TRAINER,
    MODEL_SETTINGS,
    MULTI_CLASS_ONLY,
    MULTI_LABEL_ONLY,
    BlendSpec,
    BudgetSpec,
    CategoricalParam,
    DataSpec,
    FloatParam,
    IntParam,
    ObjectiveSpec,
    Param,
    PrunerSpec,
    SamplerSpec,
    SelectionSpec,
    StudySpec,
    TrackingSpec,
    check_encoding,
    distribution,
)

__all__ = [
    "BlendSpec",
    "BudgetSpec",
    "CategoricalParam",
    "DEFAULT_TRAINER",
    "DataSpec",
    "FloatParam",
    "IntParam",
    "MODEL_SETTINGS",
    "MULTI_CLASS_ONLY",
    "MULTI_LABEL_ONLY",
    "ObjectiveSpec",
    "Param",
    "PrunerSpec",
    "STUDIES_DIR",
    "SamplerSpec",
    "SelectionSpec",
    "SpecSource",
    "StudySpec",
    "TrackingSpec",
    "check_encoding",
    "default_data_dir",
    "distribution",
    "first_error",
    "load_spec",
    "load_spec_source",
    "read_spec_text",
    "resolve_spec_path",
    "validated",
]
