"""A study's report, read from storage alone: tables (hpo.report.tables), plots
(hpo.report.figures) and files (hpo.report.render). Nothing here imports torch."""

from hpo.report.read import open_existing_study
from hpo.report.render import report_study, write_report, write_study_report
from hpo.report.summary import StudySummary, Table
from hpo.report.tables import summarize, trials_table

__all__ = [
    "StudySummary",
    "Table",
    "open_existing_study",
    "report_study",
    "summarize",
    "trials_table",
    "write_report",
    "write_study_report",
]
