"""Celery pool processes lower their CPU priority (CMDB_WORKER_NICE): an audit's batches yield the cores
to the web processes. Each case runs in a child interpreter, so this test process keeps its priority."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import os, django; django.setup(); "
    "from celery.signals import worker_process_init; import portal.celery; "
    "before = os.nice(0); worker_process_init.send(sender=None); print(before, os.nice(0))"
)


def probe(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CMDB_", "DATABASE_URL"))}
    env |= {"DJANGO_SETTINGS_MODULE": "portal.settings", "DJANGO_DEBUG": "true", "CMDB_DATA_DIR": str(tmp_path),
            **extra}
    return subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


def test_pool_processes_are_niced_by_default(tmp_path):
    proc = probe(tmp_path)
    assert proc.returncode == 0, proc.stderr
    before, after = map(int, proc.stdout.split())
    assert after == min(19, before + 10)


def test_zero_keeps_the_priority(tmp_path):
    proc = probe(tmp_path, CMDB_WORKER_NICE="0")
    assert proc.returncode == 0, proc.stderr
    before, after = map(int, proc.stdout.split())
    assert after == before


@pytest.mark.parametrize("value", ["20", "-1", "low"])
def test_out_of_range_is_refused(tmp_path, value):
    proc = probe(tmp_path, CMDB_WORKER_NICE=value)
    assert proc.returncode != 0
    assert "CMDB_WORKER_NICE" in proc.stderr
