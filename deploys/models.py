"""Release: dry-run jobs (what deploying a revision would do) and their per-machine plans and logs.

Rules about one object live here as methods; workflows live in ``deploys.services``. The tables
keep their ``changes_`` names: the models moved here from ``changes`` with their rows.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


# --- dry runs ------------------------------------------------------------------------------------------
class DryRunJob(models.Model):
    """A read-only look at what a revision (a change request's branch head) would do on machines."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        INCOMPLETE = "incomplete", "incomplete (machines without a plan are listed)"

    FINISHED_STATES = (State.SUCCEEDED, State.FAILED, State.CANCELLED, State.INCOMPLETE)

    change = models.ForeignKey("changes.ChangeRequest", null=True, blank=True, on_delete=models.CASCADE, related_name="dry_runs")
    revision = models.CharField(max_length=40, help_text="Commit the plan is computed for")
    rev_label = models.CharField(max_length=255, blank=True, help_text="What was asked for (branch, tag, sha)")
    for_head_sha = models.CharField(max_length=40, blank=True, help_text="The CR's branch head when started")
    baseline_sha = models.CharField(max_length=40, blank=True, help_text="main when started (for deletions)")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    machines = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED, db_index=True)
    machines_total = models.PositiveIntegerField(default=0)
    machines_done = models.PositiveIntegerField(default=0)
    machines_missing = models.JSONField(default=list, blank=True, help_text="Machines without a plan (incomplete job)")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    progress_at = models.DateTimeField(null=True, blank=True, help_text="When a plan was last stored")
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        db_table = "changes_dryrunjob"  # created by changes' migrations; the rows stayed when the model moved
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"dry run {self.pk} ({self.state})"

    def get_absolute_url(self) -> str:
        return reverse("jobs:job_detail", kwargs={"pk": self.pk})

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED_STATES

    @property
    def progress_percent(self) -> int:
        return int(100 * self.machines_done / self.machines_total) if self.machines_total else 100


class MachinePlan(models.Model):
    """What a dry run found for one machine: the file actions and the reload commands."""

    class Status(models.TextChoices):
        PLANNED = "planned"
        UNREACHABLE = "unreachable"
        ERROR = "error"
        MANUAL = "manual"

    job = models.ForeignKey(DryRunJob, on_delete=models.CASCADE, related_name="plans")
    machine_path = models.CharField(max_length=1000)
    status = models.CharField(max_length=20, choices=Status.choices)
    reason = models.TextField(blank=True)
    items = models.JSONField(default=list, blank=True)
    reload = models.JSONField(default=list, blank=True)
    finished_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "changes_machineplan"
        ordering = ["machine_path"]
        constraints = [models.UniqueConstraint(fields=["job", "machine_path"], name="one_plan_per_job_machine")]

    def __str__(self) -> str:
        return f"{self.machine_path}: {self.status}"

    @property
    def changed_items(self) -> list:
        return [i for i in self.items if i.get("action") != "unchanged"]


class JobLogLine(models.Model):
    job = models.ForeignKey(DryRunJob, on_delete=models.CASCADE, related_name="log_lines")
    at = models.DateTimeField(default=timezone.now)
    level = models.CharField(max_length=10, default="info")
    message = models.TextField()

    class Meta:
        db_table = "changes_joblogline"
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.level} {self.message}"
