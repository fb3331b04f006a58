"""optuna-dashboard on the study storage, and what it shows beyond the trials (notes, the
objective's name). Files attached after a study: hpo.dashboard.attach (it imports the trial
plotting code, which serving does not need)."""

from hpo.dashboard.notes import annotate_study
from hpo.dashboard.server import dashboard_url, make_dashboard_server, serve

__all__ = ["annotate_study", "dashboard_url", "make_dashboard_server", "serve"]
