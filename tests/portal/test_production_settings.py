"""The production environment of docker-compose.yml passes Django's deployment checks, and every page
carries the strict Content-Security-Policy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
_VAR = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def compose_environment(tmp_path: Path) -> dict[str, str]:
    """The web service's environment as the compose file gives it, with its own defaults filled in and
    the required values given, as an operator's .env would."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    given = {"DJANGO_SECRET_KEY": "k" + os.urandom(32).hex() + "-X_y!z", "POSTGRES_PASSWORD": "pw",
             "CMDB_REPO_URL": "ssh://git@git.example.org/cm/config.git",
             "DJANGO_ALLOWED_HOSTS": "cm.example.org"}

    def fill(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in given:
            return given[name]
        return default if default is not None and "must be set" not in default else ""

    env = {k: _VAR.sub(fill, str(v)) for k, v in compose["services"]["web"]["environment"].items()}
    env.pop("DATABASE_URL")  # no PostgreSQL needed for the checks: SQLite in the data dir
    env.pop("REDIS_URL")
    env["CMDB_DATA_DIR"] = str(tmp_path)
    return env


def test_check_deploy_is_clean_with_the_compose_production_environment(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CMDB_", "DATABASE_URL", "REDIS_URL"))}
    env.update(compose_environment(tmp_path))
    assert env["DJANGO_DEBUG"] == "false" and env["DJANGO_SECURE_SSL_REDIRECT"] == "true"
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/ci/", "/changes/", "/audits/", "/accounts/login/", "/no-such-page/"])
def test_every_page_carries_the_strict_policy(synced, viewer, client_for, url):
    r = client_for(viewer).get(url)
    policy = r["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "object-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy and "base-uri 'none'" in policy
    assert "unsafe-inline" not in policy


@pytest.mark.django_db
def test_raw_files_keep_their_own_stricter_policy(synced, viewer, client_for):
    r = client_for(viewer).get("/raw/production/web1/nginx/files/etc/nginx/nginx.conf")
    assert r.status_code == 200
    assert "default-src 'none'" in r["Content-Security-Policy"]
