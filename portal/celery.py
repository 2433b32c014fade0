"""The Celery application: ``celery -A portal worker`` / ``celery -A portal beat``."""

import gc
import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def lower_priority(**_kwargs) -> None:
    """Each pool process (and the git processes it starts) yields the CPU to the web processes:
    audits and dry runs are batch work, pages are people waiting (``CMDB_WORKER_NICE``)."""
    from django.conf import settings

    if settings.CMDB_WORKER_NICE:
        os.nice(settings.CMDB_WORKER_NICE)


@worker_process_init.connect
def freeze_startup_objects(**_kwargs) -> None:
    """Everything imported before the first task lives as long as the process: moved out of the
    garbage collector's reach, so the full collections that a batch's many small objects trigger do not
    walk Django, Celery and the portal's modules each time."""
    gc.freeze()
