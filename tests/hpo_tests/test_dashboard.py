"""optuna-dashboard on a real study: its HTTP API, each trial's artifacts, and a real browser.

One tiny study is built through the real runner (real SQLite, real training processes) and
shared by the tests of this module; the dashboard serves it from a thread on a free port.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from hpo.cli import main
from hpo.dashboard import dashboard_url, make_dashboard_server
from hpo.dashboard.attach import attach_to_best_trial
from hpo.errors import HpoError
from hpo.spec import load_spec
from storage import default_artifact_dir
from testing.data import RealData
from testing.specs import tiny_ucc_spec
from testing.studies import run_tiny_study

TRIAL_FILES = {"metrics.json", "epochs.csv", "confusion.svg", "pr_curves.svg", "train.log"}
CHROMIUM = Path("/usr/bin/chromium")


@dataclass(frozen=True)
class StudyDb:
    url: str
    study: optuna.Study
    data: Path
    root: Path


@pytest.fixture(scope="module")
def study_db(tmp_path_factory, real_data: RealData) -> StudyDb:
    """A finished 2-trial study with its artifacts, and a report attached to its best trial."""
    root = tmp_path_factory.mktemp("dash")
    data = real_data.slice(root / "data", "ucc", {"train": 96, "val": 48, "test": 16})
    url = f"sqlite:///{root}/optuna.db"
    study = run_tiny_study(
        tiny_ucc_spec(root / "tiny.yaml", n_trials=2),
        url,
        data,
        artifact_dir=default_artifact_dir(url),
    )
    report = root / "report.html"
    report.write_text("<html><body>tiny report</body></html>")
    attach_to_best_trial(study, [report], default_artifact_dir(url))
    return StudyDb(url, study, data, root)


@pytest.fixture(scope="module")
def dashboard(study_db: StudyDb):
    server = make_dashboard_server(
        study_db.url, "127.0.0.1", 0, default_artifact_dir(study_db.url)
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield dashboard_url(server).removesuffix("/dashboard")
    server.shutdown()
    server.server_close()


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def study_detail(base: str) -> dict:
    studies = json.loads(get(f"{base}/api/studies"))["study_summaries"]
    (summary,) = studies
    return json.loads(get(f"{base}/api/studies/{summary['study_id']}")) | {
        "study_id": summary["study_id"]
    }


def test_api_serves_the_study_its_trials_and_their_intermediate_values(study_db, dashboard):
    detail = study_detail(dashboard)
    study = study_db.study
    assert detail["name"] == "tiny-ucc"
    assert detail["objective_names"] == ["tuned_macro_f1"]
    attrs = {a["key"]: a["value"] for a in detail["user_attrs"]}
    assert attrs["n_train"] == "96" and attrs["n_val"] == "48"
    assert "healthy" in json.loads(attrs["train_prevalence"])
    assert "share of train" in detail["note"]["body"] and "```yaml" in detail["note"]["body"]
    assert len(detail["trials"]) == 2
    for served in detail["trials"]:
        trial = study.trials[served["number"]]
        assert served["state"] == "Complete"
        steps = {v["step"]: v["value"] for v in served["intermediate_values"]}
        assert steps == trial.intermediate_values and sorted(steps) == [1, 2]


def test_each_trial_serves_its_metrics_plots_and_log(study_db, dashboard):
    detail = study_detail(dashboard)
    for served in detail["trials"]:
        files = {a["filename"]: a for a in served["artifacts"]}
        assert set(files) == TRIAL_FILES
        base = f"{dashboard}/artifacts/{detail['study_id']}/{served['trial_id']}"
        history = json.loads(get(f"{base}/{files['metrics.json']['artifact_id']}"))
        served_values = {v["step"]: v["value"] for v in served["intermediate_values"]}
        assert {m["epoch"]: m["tuned_macro_f1"] for m in history} == served_values
        assert get(f"{base}/{files['confusion.svg']['artifact_id']}").startswith(b"<svg")
        assert files["confusion.svg"]["mimetype"] == "image/svg+xml"
        csv_header = get(f"{base}/{files['epochs.csv']['artifact_id']}").decode().splitlines()[0]
        assert csv_header.startswith("epoch,") and "f1[healthy]" in csv_header
        log = get(f"{base}/{files['train.log']['artifact_id']}").decode()
        assert '"trial": %d' % served["number"] in log and "epoch 2: " in log  # noqa: UP031
        attrs = {a["key"]: a["value"] for a in served["user_attrs"]}
        assert float(attrs["val_tuned_macro_f1"]) == served["values"][0]  # the best epoch's, flat
        assert "| epoch |" in served["note"]["body"]


def test_report_attached_to_the_best_trial_opens_from_its_note(study_db, dashboard):
    detail = study_detail(dashboard)
    best = detail["best_trials"][0]
    (artifact,) = detail["artifacts"]
    assert artifact["filename"] == f"trial-{best['number']}-report.html"
    link = f"/artifacts/{detail['study_id']}/{artifact['artifact_id']}"
    assert f"]({link})" in best["note"]["body"] and "| epoch |" in best["note"]["body"]
    assert get(dashboard + link) == b"<html><body>tiny report</body></html>"

    report = study_db.root / "report.html"
    report.write_text("<html><body>second report</body></html>")
    ids = attach_to_best_trial(study_db.study, [report], default_artifact_dir(study_db.url))
    assert ids == [artifact["artifact_id"]]  # same link, new content, no second copy
    again = study_detail(dashboard)
    assert (
        len(again["artifacts"]) == 1 and again["best_trials"][0]["note"]["body"].count(link) == 1
    )
    assert get(dashboard + link) == b"<html><body>second report</body></html>"


def test_a_failed_trial_still_leaves_its_log_with_the_traceback(study_db, tmp_path):
    from hpo.study import open_study, run_study

    fault = {
        "trainer": "testing.fault_trainers:raise_when_lr_above_1",
        "search_space": {"learning_rate": {"type": "categorical", "choices": [5.0]}},
    }
    spec = load_spec(str(tiny_ucc_spec(tmp_path / "fail.yaml", n_trials=1, **fault)))
    study = open_study(spec, f"sqlite:///{tmp_path}/failing.db", heartbeat_interval=None)
    with pytest.raises(HpoError, match="InjectedFault: injected fault at learning rate 5"):
        run_study(spec, study, study_db.data, max_failures=1, artifact_dir=tmp_path / "artifacts")
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.FAIL
    names = {
        a.filename for a in optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
    }
    assert names == {"metrics.json", "epochs.csv", "train.log"}  # no epoch, so no plots
    log = (tmp_path / "tiny-ucc" / "trials" / "0" / "train.log").read_text()
    assert json.loads(log.splitlines()[0])["params"]["learning_rate"] == 5.0
    assert "Traceback" in log and "InjectedFault: injected fault at learning rate 5" in log


def test_a_missing_database_or_a_busy_port_is_one_line(tmp_path, study_db, capsys):
    assert main(["dashboard", "--storage", f"sqlite:///{tmp_path}/none.db"]) == 2
    assert "no study database at" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(HpoError, match="cannot listen on 127.0.0.1"):
            make_dashboard_server(
                study_db.url, "127.0.0.1", busy.getsockname()[1], tmp_path / "artifacts"
            )


def _chromium():
    """Playwright's API on Debian's chromium; skipped without it, except under CI."""
    missing = None if CHROMIUM.exists() else f"{CHROMIUM} not found (apt-get install chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = (
            missing
            or "playwright not installed (pip install playwright; no browser download needed)"
        )
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser test under CI: {missing}")
        pytest.skip(missing)
    return sync_playwright


@pytest.mark.browser
def test_browser_shows_the_study_a_trial_curve_and_its_artifacts(study_db, dashboard, tmp_path):
    sync_playwright = _chromium()
    detail = study_detail(dashboard)
    trial = detail["best_trials"][0]
    first = trial["intermediate_values"][0]
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{dashboard}/dashboard")
            page.get_by_text("tiny-ucc").first.wait_for(timeout=30_000)
            page.screenshot(path=tmp_path / "studies.png")

            page.goto(f"{dashboard}/dashboard/studies/{detail['study_id']}")
            page.get_by_text("Intermediate values").first.wait_for(timeout=30_000)
            page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
            page.screenshot(path=tmp_path / "study.png", full_page=True)

            page.goto(
                f"{dashboard}/dashboard/studies/{detail['study_id']}/trials?numbers={trial['number']}"
            )
            page.get_by_text(f"Trial {trial['number']} (trial_id={trial['trial_id']})").wait_for(
                timeout=30_000
            )
            page.get_by_text(f"{first['step']} {first['value']!r}", exact=True).wait_for(
                timeout=30_000
            )
            image = page.locator("img[alt='confusion.svg']")
            image.scroll_into_view_if_needed(timeout=30_000)
            page.wait_for_function(
                "img => img.complete && img.naturalWidth > 0",
                arg=image.element_handle(),
                timeout=30_000,
            )
            for name in TRIAL_FILES:
                assert page.get_by_text(name, exact=True).count() >= 1, name
            page.screenshot(path=tmp_path / "trial.png")
            log_href = page.locator("a[download='train.log']").get_attribute("href")
            assert "epoch 2: " in page.request.get(dashboard + log_href).text()
            report_href = page.get_by_role(
                "link", name=f"trial-{trial['number']}-report.html"
            ).get_attribute("href")
            assert "report" in page.request.get(dashboard + report_href).text()
        finally:
            browser.close()
    for shot in ("studies.png", "study.png", "trial.png"):
        assert (tmp_path / shot).stat().st_size > 10_000, shot
