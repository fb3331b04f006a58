"""A report as data: titled tables in reading order, with the notes and warnings beside them.
Builders (hpo.report.tables, best_tables) fill it; renderers (hpo.report.render) only print it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from hpo.spec import StudySpec


@dataclass(frozen=True)
class Table:
    """One table: `key` names its CSV file, `title` heads it; a pivot is also drawn as a heat-map."""

    key: str
    title: str
    frame: pd.DataFrame
    pivot: bool = False


@dataclass
class StudySummary:
    """All tables of a report, in reading order; `notes` explain what a table leaves out."""

    name: str
    spec: StudySpec
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pivot_axes: tuple[str, str] | None = None

    def add(self, key: str, title: str, frame: pd.DataFrame, *, pivot: bool = False) -> None:
        self.tables.append(Table(key, title, frame, pivot))

    def table(self, key: str) -> pd.DataFrame | None:
        return next((t.frame for t in self.tables if t.key == key), None)
