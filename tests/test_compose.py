"""docker-compose.yml runs the production shape: every command it (and the Dockerfile) names must exist."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
import yaml
from celery import Celery
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
PORTAL_SERVICES = ("web", "worker", "beat")


def commands_of(service: dict) -> list[list[str]]:
    """The programs a service runs: its command, split at ``sh -c`` and ``&&``, plus its health check."""
    raw = []
    command = service.get("command")
    if isinstance(command, list) and command[:2] == ["sh", "-c"]:
        raw.extend(part for part in command[2].split("&&"))
    elif isinstance(command, list):
        raw.append(shlex.join(command))
    elif command:
        raw.append(command)
    test = (service.get("healthcheck") or {}).get("test") or []
    if test and test[0] == "CMD-SHELL":
        raw.append(test[1])
    return [[t for t in shlex.split(part) if t != "exec"] for part in raw if part.strip()]


def check(argv: list[str]) -> None:
    program = argv[0]
    if program == "python" and argv[1:2] == ["manage.py"]:
        assert (ROOT / "manage.py").exists()
        assert argv[2] in get_commands(), f"manage.py has no command {argv[2]!r}"
    elif program == "gunicorn":
        module, _, attr = argv[1].partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), argv[1]
    elif program == "celery":
        app_module = argv[argv.index("-A") + 1]
        app = importlib.import_module(app_module).celery_app
        assert isinstance(app, Celery)
        assert argv[argv.index("-A") + 2] in {"worker", "beat", "inspect"}


@pytest.mark.parametrize("name", PORTAL_SERVICES)
def test_every_portal_service_command_exists_in_the_project(name):
    argvs = commands_of(COMPOSE["services"][name])
    assert argvs, f"{name} runs nothing"
    for argv in argvs:
        check(argv)


def test_services_wait_for_healthy_dependencies_and_mount_the_data_and_ssh_volumes():
    services = COMPOSE["services"]
    assert {"postgres", "redis", *PORTAL_SERVICES} <= set(services)
    for name in PORTAL_SERVICES:
        service = services[name]
        assert service.get("healthcheck"), f"{name} has no health check"
        assert all(dep["condition"].startswith("service_") for dep in service["depends_on"].values())
        mounts = " ".join(str(v) for v in service["volumes"])
        assert "/data" in mounts and "cmdb-ssh" in mounts


def test_dockerfile_settings_module_and_default_command_exist():
    dockerfile = (ROOT / "Dockerfile").read_text()
    settings_module = re.search(r"DJANGO_SETTINGS_MODULE=([\w.]+)", dockerfile).group(1)
    assert importlib.util.find_spec(settings_module) is not None
    cmd = re.search(r'^CMD \[(.*)\]$', dockerfile, re.M).group(1)
    check([part.strip().strip('"') for part in cmd.split(",")])
