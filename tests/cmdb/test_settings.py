"""Settings come from the environment and fail loudly on values that cannot be right."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal import env

ROOT = Path(__file__).resolve().parents[2]


def load_settings(tmp_path, **overrides):
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CMDB_", "DATABASE_URL"))}
    environment.update({"CMDB_DATA_DIR": str(tmp_path / "data"), **overrides})
    code = "import portal.settings as s; print(s.DATABASES['default']['ENGINE'], s.CMDB_BRANCH, s.ALLOWED_HOSTS)"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True)


def test_secret_key_is_required_unless_debug(tmp_path):
    result = load_settings(tmp_path)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required" in result.stderr


def test_debug_runs_on_sqlite_with_defaults(tmp_path):
    result = load_settings(tmp_path, DJANGO_DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["django.db.backends.sqlite3", "main"]


def test_database_url_selects_postgresql(tmp_path):
    result = load_settings(tmp_path, DJANGO_SECRET_KEY="x" * 50, DATABASE_URL="postgres://u:p@db:5432/cm",
                           DJANGO_ALLOWED_HOSTS="cm.example.org", CMDB_BRANCH="release")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:3] == ["django.db.backends.postgresql", "release", "['cm.example.org']"]


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("DJANGO_DEBUG", "maybe", "not a boolean"),
        ("DATABASE_URL", "mysql://x/y", "not supported"),
        ("DATABASE_URL", "postgres://host:5432/", "names no database"),
        ("CMDB_SYNC_INTERVAL", "often", "not an integer"),
        ("CMDB_SYNC_INTERVAL", "1", "at least 10"),
    ],
)
def test_bad_values_stop_start_up_with_the_variable_named(tmp_path, variable, value, message):
    result = load_settings(tmp_path, **{"DJANGO_DEBUG": "true", variable: value})
    assert result.returncode != 0
    assert message in result.stderr and variable.split("_")[0] in result.stderr


def test_env_helpers_raise_improperly_configured(monkeypatch):
    monkeypatch.setenv("X_BOOL", "perhaps")
    with pytest.raises(ImproperlyConfigured, match="X_BOOL"):
        env.env_bool("X_BOOL")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    assert env.env_list("X_LIST", []) == ["a", "b", "c"]
    with pytest.raises(ImproperlyConfigured, match="X_REQ"):
        env.env_str("X_REQ", required=True)
