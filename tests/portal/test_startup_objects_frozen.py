"""Pool processes and web processes move what they imported at start-up out of the garbage collector's
reach (``gc.freeze``): the full collections a batch of many small objects triggers then skip Django,
Celery and the portal (an audit of 5,000 machines: 1.2 s of worker CPU less, benchmarks/bench_audit.py).
Each case runs in a child interpreter, so this test process keeps its collector as it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def child(tmp_path: Path, code: str) -> list[int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CMDB_", "DATABASE_URL"))}
    env |= {"DJANGO_SETTINGS_MODULE": "portal.settings", "DJANGO_DEBUG": "true", "CMDB_DATA_DIR": str(tmp_path),
            "CMDB_WORKER_NICE": "0"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [int(n) for n in proc.stdout.split()]


def test_a_pool_process_freezes_what_it_imported_when_it_starts(tmp_path):
    before, after = child(tmp_path, (
        "import gc, django; django.setup(); from celery.signals import worker_process_init; import portal.celery; "
        "before = gc.get_freeze_count(); worker_process_init.send(sender=None); print(before, gc.get_freeze_count())"
    ))
    assert before == 0
    assert after > 10_000  # Django, Celery, the portal: far more than a handful of objects


def test_a_web_process_freezes_the_loaded_application(tmp_path):
    (count,) = child(tmp_path, "import gc, portal.wsgi; print(gc.get_freeze_count())")
    assert count > 10_000
