"""Storage URL resolution and redaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from storage import DEFAULT_STORAGE_URL, StorageError, redact, resolve_storage_url


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    monkeypatch.chdir(tmp_path)  # relative SQLite paths create directories here


def test_explicit_beats_env_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_storage_url() == DEFAULT_STORAGE_URL
    monkeypatch.setenv("HPO_STORAGE", "sqlite:///env/optuna.db")
    assert resolve_storage_url() == "sqlite:///env/optuna.db"
    assert resolve_storage_url("sqlite:///cli/optuna.db") == "sqlite:///cli/optuna.db"


def test_relative_sqlite_path_gets_its_directory(tmp_path: Path) -> None:
    resolve_storage_url()
    assert (tmp_path / "runs").is_dir()
    resolve_storage_url("sqlite:///a/b/c.db")
    assert (tmp_path / "a" / "b").is_dir()


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg"])
def test_postgres_schemes_use_psycopg3(scheme: str) -> None:
    url = resolve_storage_url(f"{scheme}://hpo:pw@db.example:5432/hpo")
    assert url == "postgresql+psycopg://hpo:pw@db.example:5432/hpo"


def test_explicit_driver_is_kept() -> None:
    assert resolve_storage_url("postgresql+psycopg2://u:p@h/d").startswith(
        "postgresql+psycopg2://"
    )


@pytest.mark.parametrize("ref", ["${PGPASSWORD}", "$PGPASSWORD"])
def test_env_reference_fills_password_with_escaping(
    monkeypatch: pytest.MonkeyPatch, ref: str
) -> None:
    secret = "s3cr@t/with:odd%chars$"
    monkeypatch.setenv("PGPASSWORD", secret)
    url = make_url(resolve_storage_url(f"postgresql://hpo:{ref}@db.example/hpo"))
    assert (url.password, url.host, url.database) == (secret, "db.example", "hpo")


def test_env_references_in_host_port_path_and_whole_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", "db.internal")
    monkeypatch.setenv("PGPORT", "6543")
    url = make_url(resolve_storage_url("postgres://hpo:x@${PGHOST}:${PGPORT}/hpo"))
    assert (url.host, url.port) == ("db.internal", 6543)
    monkeypatch.setenv("DATA", "data dir")
    assert make_url(resolve_storage_url("sqlite:///${DATA}/o.db")).database == "data dir/o.db"
    monkeypatch.setenv("HPO_STORAGE", "$WHOLE")
    monkeypatch.setenv("WHOLE", "postgresql://u:p@h/d")
    assert resolve_storage_url() == "postgresql+psycopg://u:p@h/d"


def test_percent_encoded_dollar_is_literal() -> None:
    assert make_url(resolve_storage_url("postgresql://u:pa%24%24@h/d")).password == "pa$$"


def test_unset_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HPO_TEST_UNSET", raising=False)
    with pytest.raises(StorageError, match=r"\$HPO_TEST_UNSET.*not set") as info:
        resolve_storage_url("postgresql://hpo:${HPO_TEST_UNSET}@h/d")
    assert "\n" not in str(info.value)


def test_garbage_url_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="not a valid storage URL"):
        resolve_storage_url("optuna.db")


def test_redact_hides_password() -> None:
    shown = redact("postgresql+psycopg://hpo:hunter2@db:5432/hpo?sslmode=require")
    assert shown == "postgresql+psycopg://hpo:***@db:5432/hpo?sslmode=require"
    assert "hunter2" not in redact("postgresql+psycopg://hpo@db/hpo?password=hunter2")
    assert redact(DEFAULT_STORAGE_URL) == DEFAULT_STORAGE_URL
    assert "hunter2" not in redact("not a url hunter2")
