"""Configuration audits (declared on main versus live on the machines) and the stored figures of
status accounting.

An :class:`AuditRun` looks at a scope (everything, an environment or a machine) once; each machine
gets a :class:`MachineResult` as its batch finishes, each discrepancy a :class:`Finding`, each machine
configured by hand a :class:`ManualCheck` for a person. :class:`MachineStatus` keeps the latest
figures per machine so the home page never aggregates history.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone


def percent(good: int, total: int) -> float | None:
    """Compliance as a percentage with one decimal; None when nothing was audited."""
    return round(100.0 * good / total, 1) if total else None


class AuditRun(models.Model):
    """One audit of a scope, against main's head at the start (``main_sha``)."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        INCOMPLETE = "incomplete", "incomplete (machines not done are listed)"
        FAILED = "failed"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "monthly schedule"
        MANUAL = "manual", "started from the portal"
        API = "api", "started through the API"
        VERIFICATION = "verification", "verification of a release"

    ACTIVE_STATES = (State.QUEUED, State.RUNNING)
    FINISHED_STATES = (State.SUCCEEDED, State.INCOMPLETE, State.FAILED)

    scope = models.CharField(max_length=1000, blank=True,
                             help_text='"" for everything, an environment, or environment/machine')
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED, db_index=True)
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.MANUAL)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")
    main_sha = models.CharField(max_length=40, blank=True, help_text="main's head when the run started")
    machines = models.JSONField(default=list, blank=True)
    machines_total = models.PositiveIntegerField(default=0)
    machines_done = models.PositiveIntegerField(default=0)
    machines_missing = models.JSONField(default=list, blank=True, help_text="Machines not done (incomplete run)")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    progress_at = models.DateTimeField(null=True, blank=True, help_text="When a batch was last stored")
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    # Figures stored when the run finishes: {"files": n, "in_sync": n, "compliance": pct,
    # "statuses": {status: n}, "environments": {env: {...same...}}}.
    summary = models.JSONField(default=dict, blank=True)
    summary_mailed_at = models.DateTimeField(null=True, blank=True)
    pruned_at = models.DateTimeField(null=True, blank=True, help_text="When retention removed per-machine results")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Two runs of one scope never run at once (the database decides, even between two web workers).
            models.UniqueConstraint(fields=["scope"], condition=Q(state__in=["queued", "running"]),
                                    name="one_active_audit_per_scope"),
        ]

    def __str__(self) -> str:
        return f"audit {self.pk} of {self.scope_label} ({self.state})"

    def get_absolute_url(self) -> str:
        return reverse("audits:audit_detail", kwargs={"pk": self.pk})

    @property
    def scope_label(self) -> str:
        return self.scope or "everything"

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED_STATES

    @property
    def progress_percent(self) -> int:
        return int(100 * self.machines_done / self.machines_total) if self.machines_total else 100

    @property
    def compliance(self) -> float | None:
        return self.summary.get("compliance")


class MachineResult(models.Model):
    """What one audit found on one machine."""

    class Status(models.TextChoices):
        COMPLIANT = "compliant"
        DRIFTED = "drifted"
        UNREACHABLE = "unreachable"
        ERROR = "error"
        MANUAL = "manual"

    run = models.ForeignKey(AuditRun, on_delete=models.CASCADE, related_name="results")
    machine_path = models.CharField(max_length=1000)
    environment = models.CharField(max_length=255, db_index=True)
    status = models.CharField(max_length=20, choices=Status.choices)
    reason = models.TextField(blank=True)
    files_total = models.PositiveIntegerField(default=0)
    files_in_sync = models.PositiveIntegerField(default=0)
    compliance = models.FloatField(null=True, blank=True, help_text="None for unreachable, error and manual machines")
    # Per application: {"production/web1/nginx": [in_sync, audited]}.
    applications = models.JSONField(default=dict, blank=True)
    finished_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["machine_path"]
        constraints = [models.UniqueConstraint(fields=["run", "machine_path"], name="one_result_per_run_machine")]
        indexes = [models.Index(fields=["machine_path", "-finished_at"], name="audit_result_machine_recent")]

    def __str__(self) -> str:
        return f"{self.machine_path}: {self.status}"

    @property
    def application_compliance(self) -> list[tuple[str, int, int, float | None]]:
        return [(app, good, total, percent(good, total)) for app, (good, total) in sorted(self.applications.items())]


class Finding(models.Model):
    """One discrepancy between the repository and a machine, seen by one run.

    ``fingerprint`` identifies the drift itself (machine, file, kind and what is live): when the next
    run sees the same drift on a finding someone already handled, the new finding inherits the
    handling (state, note, change request) instead of asking again; different live content is new drift.
    """

    class Kind(models.TextChoices):
        CONTENT = "content", "content drift"
        MODE = "mode", "mode drift"
        OWNER = "owner", "owner/group drift"
        MISSING = "missing", "missing on the machine"
        UNREADABLE = "unreadable", "not readable"
        # A person checked a machine configured by hand and found it differs from its README.
        MANUAL = "manual", "manual check discrepancy"

    class State(models.TextChoices):
        OPEN = "open"
        ACKNOWLEDGED = "acknowledged"
        ADOPTED = "adopted", "adopt live: change request opened"
        RESTORE = "restore", "restore declared: change request opened"

    run = models.ForeignKey(AuditRun, on_delete=models.CASCADE, related_name="findings")
    result = models.ForeignKey(MachineResult, on_delete=models.CASCADE, related_name="findings")
    machine_path = models.CharField(max_length=1000, db_index=True)
    environment = models.CharField(max_length=255)
    app_path = models.CharField(max_length=1000, blank=True)
    source_path = models.CharField(max_length=1000, blank=True, help_text="The declaring file in the repository")
    target = models.CharField(max_length=4096)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    secret = models.BooleanField(default=False)
    declared = models.CharField(max_length=255, blank=True, help_text="Declared mode or owner:group")
    live = models.CharField(max_length=255, blank=True, help_text="Live mode or owner:group")
    live_sha256 = models.CharField(max_length=64, blank=True)
    diff = models.TextField(blank=True, help_text="Unified diff live -> declared (secrets masked)")
    reason = models.TextField(blank=True)
    fingerprint = models.CharField(max_length=64, db_index=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.OPEN, db_index=True)
    note = models.TextField(blank=True)
    handled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    handled_at = models.DateTimeField(null=True, blank=True)
    change = models.ForeignKey("changes.ChangeRequest", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="audit_findings")
    carried_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                     help_text="The earlier finding of the same drift whose handling this one keeps")

    class Meta:
        ordering = ["machine_path", "target", "kind"]
        indexes = [models.Index(fields=["state", "environment"], name="audit_finding_state_env")]

    def __str__(self) -> str:
        return f"{self.machine_path}:{self.target} {self.kind} ({self.state})"

    def get_absolute_url(self) -> str:
        return reverse("audits:finding_detail", kwargs={"pk": self.pk})

    @staticmethod
    def fingerprint_of(machine_path: str, target: str, kind: str, live: str) -> str:
        return hashlib.sha256("\0".join((machine_path, target, kind, live)).encode()).hexdigest()

    @property
    def is_open(self) -> bool:
        return self.state == self.State.OPEN

    GIT_MODES = ("0644", "0755")

    @property
    def adopt_refusal(self) -> str:
        """Why "adopt live" cannot apply to this finding ("" when it can): Git holds file contents
        and the modes 0644/0755; anything else is a manifest edit for a person, and a secret is never
        copied from a machine into the repository (it may be stored encrypted there)."""
        if self.kind == self.Kind.MANUAL:
            return ("A manual check discrepancy has no live file to adopt: describe the machine as it should be "
                    "in its README in a branch, or restore declared to have it set up as the README says.")
        if self.kind not in (self.Kind.CONTENT, self.Kind.MODE):
            return (f"Only content and mode drift can be adopted; for {self.get_kind_display()} edit the "
                    "repository in a branch, or restore the declared file.")
        if self.secret:
            return ("A secret is never copied from a machine into the repository; store it the way the "
                    "repository keeps secrets (e.g. encrypted) in a branch of your own.")
        if self.kind == self.Kind.MODE:
            if self.declared not in self.GIT_MODES:
                return (f"Mode {self.declared} is declared in the application's manifest.toml; change it there "
                        "in a branch (adopting writes only what Git records: 0644 or 0755).")
            if self.live not in self.GIT_MODES:
                return (f"Git records only modes 0644 and 0755; declare mode {self.live} in the application's "
                        "manifest.toml instead.")
        return ""


class ManualCheck(models.Model):
    """A person's check of a machine configured by hand, created by each run that covers it."""

    class State(models.TextChoices):
        OPEN = "open"
        MATCHES = "matches", "matches the README"
        DISCREPANCY = "discrepancy"

    run = models.ForeignKey(AuditRun, on_delete=models.CASCADE, related_name="manual_checks")
    machine_path = models.CharField(max_length=1000, db_index=True)
    environment = models.CharField(max_length=255)
    state = models.CharField(max_length=20, choices=State.choices, default=State.OPEN, db_index=True)
    note = models.TextField(blank=True)
    checked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    checked_at = models.DateTimeField(null=True, blank=True)
    due = models.DateField(help_text="The first day of the month after the run's: open checks are overdue then")

    class Meta:
        ordering = ["machine_path"]
        constraints = [models.UniqueConstraint(fields=["run", "machine_path"], name="one_check_per_run_machine")]

    def __str__(self) -> str:
        return f"{self.machine_path}: {self.state}"

    @property
    def is_overdue(self) -> bool:
        return self.state == self.State.OPEN and timezone.localdate() >= self.due


class MachineStatus(models.Model):
    """The latest audit figures of one machine (one row per machine, kept current by the services)."""

    machine_path = models.CharField(max_length=1000, unique=True)
    environment = models.CharField(max_length=255, db_index=True)
    last_result = models.ForeignKey(MachineResult, null=True, on_delete=models.SET_NULL, related_name="+")
    last_audit_at = models.DateTimeField(null=True)
    status = models.CharField(max_length=20, choices=MachineResult.Status.choices, db_index=True)
    reason = models.TextField(blank=True)
    compliance = models.FloatField(null=True)
    files_total = models.PositiveIntegerField(default=0)
    files_in_sync = models.PositiveIntegerField(default=0)
    open_findings = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["machine_path"]

    def __str__(self) -> str:
        return f"{self.machine_path}: {self.status}"
