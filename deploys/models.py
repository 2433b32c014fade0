"""Release: dry-run jobs (what deploying a revision would do) and their per-machine plans and logs.

Rules about one object live here as methods; workflows live in ``deploys.services``. The tables
keep their ``changes_`` names: the models moved here from ``changes`` with their rows.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


# --- dry runs ------------------------------------------------------------------------------------------
class Job(models.Model):
    """A job on machines: a dry run (read only: what a revision would do), a deploy (applies a dry
    run's reviewed plan), or a restore (puts back the files a deploy replaced, from its backups)."""

    class Kind(models.TextChoices):
        DRY_RUN = "dry-run", "dry run"
        DEPLOY = "deploy"
        RESTORE = "restore"

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        INCOMPLETE = "incomplete", "incomplete (machines without a plan are listed)"
        HALTED = "halted", "halted (too many machines failed; the rest left untouched)"
        INTERRUPTED = "interrupted", "interrupted (the worker stopped; what was done is listed)"

    FINISHED_STATES = (State.SUCCEEDED, State.FAILED, State.CANCELLED, State.INCOMPLETE, State.HALTED,
                       State.INTERRUPTED)
    ACTIVE_STATES = (State.QUEUED, State.RUNNING)

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.DRY_RUN, db_index=True)
    plan_job = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                 help_text="Deploy: the dry run whose plan it applies; restore: the deploy it undoes")
    confirm_conflicts = models.BooleanField(default=False, help_text="Deploy: also overwrite conflicting hand edits")

    change = models.ForeignKey("changes.ChangeRequest", null=True, blank=True, on_delete=models.CASCADE, related_name="jobs")
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
    pruned_at = models.DateTimeField(null=True, blank=True, help_text="When retention removed its plans or log")

    class Meta:
        db_table = "changes_dryrunjob"  # created by changes' migrations; the rows stayed when the model moved
        ordering = ["-created_at", "-id"]
        constraints = [
            # Two deploys of one change request at once would race for the same files.
            models.UniqueConstraint(fields=["change"], condition=models.Q(kind="deploy", state__in=["queued", "running"]),
                                    name="one_active_deploy_per_change"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.pk} ({self.state})"

    def get_absolute_url(self) -> str:
        return reverse("jobs:job_detail", kwargs={"pk": self.pk})

    @property
    def writes(self) -> bool:
        return self.kind in (self.Kind.DEPLOY, self.Kind.RESTORE)

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED_STATES

    def backup_dir(self, machine_path: str) -> Path:
        """Where a deploy keeps what it replaced on one machine (read by the reaper and restores)."""
        return Path(settings.CMDB_DEPLOY_BACKUP_DIR) / str(self.pk) / machine_path.replace("/", "__")

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
        APPLIED = "applied"  # deploys and restores from here on
        SKIPPED = "skipped"  # nothing written (changed since plan, not enabled, no backup)
        FAILED = "failed"  # a write or reload failed; the files written were put back
        # The worker died while the machine was being deployed (its backup was made): each file is the
        # old or the new one, whole; a restore puts them back. Set by the reaper.
        INTERRUPTED = "interrupted"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="plans")
    machine_path = models.CharField(max_length=1000)
    status = models.CharField(max_length=20, choices=Status.choices)
    reason = models.TextField(blank=True)
    items = models.JSONField(default=list, blank=True)
    reload = models.JSONField(default=list, blank=True)
    reload_results = models.JSONField(default=list, blank=True, help_text="Deploys: each reload command's outcome")
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
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log_lines")
    at = models.DateTimeField(default=timezone.now)
    level = models.CharField(max_length=10, default="info")
    message = models.TextField()

    class Meta:
        db_table = "changes_joblogline"
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.level} {self.message}"
