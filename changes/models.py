"""Change control: change requests tied to branches, their impact, votes, record, baselines.

Rules about one object live here as methods; workflows that touch several rows, Git or mail live in
``changes.services``.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from django.utils import timezone

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def portal_time(moment: datetime) -> datetime:
    """``moment`` in the portal's time zone (``TIME_ZONE``), in which standing windows are written.

    Not the viewer's: a window "Tue 07:00–09:00" is one set of hours for everyone."""
    return timezone.localtime(moment, timezone.get_default_timezone())


def when(moment: datetime) -> str:
    """"Tue 2 Dec 07:00 Europe/Paris": a moment as refusals name it."""
    local = portal_time(moment)
    return f"{WEEKDAYS[local.weekday()]} {local.day} {local:%b %H:%M} {timezone.get_default_timezone_name()}"


def span(start: datetime, end: datetime) -> str:
    """"Tue 2 Dec 07:00–09:00 Europe/Paris" (the end's day is named only when it differs)."""
    first, last = portal_time(start), portal_time(end)
    if first.date() == last.date():
        return f"{when(start).rsplit(' ', 1)[0]}–{last:%H:%M} {timezone.get_default_timezone_name()}"
    return f"{when(start).rsplit(' ', 1)[0]} – {when(end)}"


class ChangeRequest(models.Model):
    """A request to change the configuration, carried by a branch of the configuration repository."""

    class Type(models.TextChoices):
        STANDARD = "standard"
        NORMAL = "normal"
        EMERGENCY = "emergency"

    class Risk(models.TextChoices):
        LOW = "low"
        MEDIUM = "medium"
        HIGH = "high"

    class State(models.TextChoices):
        DRAFT = "draft"
        SUBMITTED = "submitted"
        APPROVED = "approved"
        REJECTED = "rejected"
        SCHEDULED = "scheduled"
        IMPLEMENTED = "implemented"
        VERIFIED = "verified"
        CLOSED = "closed"
        WITHDRAWN = "withdrawn"

    OPEN_STATES = (State.DRAFT, State.SUBMITTED, State.APPROVED, State.SCHEDULED)
    # Released states in which an emergency change still awaits its approval after the fact.
    AFTER_THE_FACT_STATES = (State.IMPLEMENTED, State.VERIFIED, State.CLOSED)
    # Nothing more will happen to the change request: what it refers to is history.
    FINAL_STATES = (State.CLOSED, State.WITHDRAWN, State.REJECTED)

    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, help_text="Markdown")
    type = models.CharField(max_length=20, choices=Type.choices, default=Type.NORMAL)
    risk = models.CharField(max_length=10, choices=Risk.choices, default=Risk.MEDIUM)
    planned_start = models.DateTimeField(null=True, blank=True)
    planned_end = models.DateTimeField(null=True, blank=True)
    rollback_plan = models.TextField(blank=True)
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="change_requests")
    watchers = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="watched_changes")
    branch = models.CharField(max_length=255, db_index=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.DRAFT, db_index=True)
    head_sha = models.CharField(max_length=40, blank=True, help_text="Branch head the impact was computed for")
    base_sha = models.CharField(max_length=40, blank=True, help_text="Merge base with main")
    branch_missing = models.BooleanField(default=False, help_text="The branch is gone from origin")
    required_approvals = models.PositiveSmallIntegerField(default=1)
    impact = models.JSONField(default=dict, blank=True)
    merged_sha = models.CharField(max_length=40, blank=True)
    released_from = models.CharField(max_length=40, blank=True, help_text="main before the release (a deploy's base)")
    # Did the release land? {"state": pending|passed|failed, "audit": id, "findings": [...], "manual": [...]},
    # written by the verification audit after a deploy (or after the release when nothing is deployed).
    verification = models.JSONField(default=dict, blank=True)
    # The reason an emergency change was released outside its window or inside a freeze (flagged for good).
    released_outside_window = models.TextField(blank=True)
    # Emergency changes may be implemented before approval; they stay flagged until approved.
    approved_after_the_fact = models.BooleanField(default=False)
    implemented_without_approval = models.BooleanField(default=False)
    # A rollback: this change's branch undoes the release of ``reverts`` (see changes.reverts).
    reverts = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="reverted_by")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"CR-{self.pk}: {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("changes:change_detail", kwargs={"pk": self.pk})

    @property
    def reference(self) -> str:
        return f"CR-{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES

    @property
    def needs_after_the_fact_approval(self) -> bool:
        """An emergency change released before it was approved, and still not approved."""
        return self.implemented_without_approval and not self.approved_after_the_fact

    def clean(self) -> None:
        if self.planned_start and self.planned_end and self.planned_end <= self.planned_start:
            raise ValidationError({"planned_end": "The planned window must end after it starts."})

    def environments(self) -> list[str]:
        return sorted({ci["environment"] for ci in self.impact.get("cis", []) if ci.get("environment")})

    def machines(self) -> list[str]:
        """The machines the change needs a deploy on (what its dry run looks at): documentation is
        reviewed, never deployed. Impacts stored before the flag existed count as deploys."""
        return sorted({ci["machine_path"] for ci in self.impact.get("cis", [])
                       if ci.get("machine_path") and ci.get("deploy", True)})

    @property
    def documentation_only(self) -> bool:
        """Every changed file is documentation (README, pictures, Markdown): no machine needs a deploy."""
        return bool(self.impact.get("documentation_only"))

    def release_window_problem(self, at: datetime | None = None) -> str | None:
        """Why releasing this change at ``at`` (default: now) breaks a freeze or a window, else None.

        The one rule every release path asks (``changes.services.change_implement``, deploy jobs):
        no freeze of its environments in force; inside its planned window when it has one; inside a
        standing window of each of its environments that has some; and, without a planned window, at
        least one standing window must vouch for the moment. Emergencies get the same answer: the
        caller decides whether a reason overrides it. The answer reads after "it would be released".
        """
        at = at or timezone.now()
        environments = self.environments()
        freeze = FreezePeriod.of_environments(environments).filter(start__lte=at, end__gt=at).order_by("-end").first()
        if freeze is not None:
            return f"inside the freeze “{freeze.reason}” until {when(freeze.end)}"
        if self.planned_start and self.planned_end and not self.planned_start <= at < self.planned_end:
            return f"outside its planned window ({span(self.planned_start, self.planned_end)})"
        standing = ChangeWindow.of_environments(environments)
        for environment, windows in standing.items():
            if not any(w.contains(at) for w in windows):
                return f"outside the standing change windows of {environment} ({ChangeWindow.describe_all(windows)})"
        if not (self.planned_start and self.planned_end) and not standing:
            return "without a planned window, and no standing change window covers its environments"
        return None

    def schedule_window_problem(self, start: datetime, end: datetime) -> str | None:
        """Why ``start``..``end`` cannot be this change's planned window, else None (emergencies: None).

        Refused inside a freeze, and outside the standing windows of any impacted environment that
        has some (one window must hold the whole planned window); environments without are free.
        """
        if self.type == self.Type.EMERGENCY:
            return None
        environments = self.environments()
        freeze = FreezePeriod.of_environments(environments).filter(start__lt=end, end__gt=start).first()
        if freeze is not None:
            return (f"The window falls in the freeze “{freeze.reason}” ({freeze.start:%Y-%m-%d %H:%M} – "
                    f"{freeze.end:%Y-%m-%d %H:%M}); only emergency changes may be scheduled then.")
        for environment, windows in ChangeWindow.of_environments(environments).items():
            if not any(w.covers(start, end) for w in windows):
                return (f"The planned window ({span(start, end)}) is outside the standing change windows of "
                        f"{environment} ({ChangeWindow.describe_all(windows)}).")
        return None


class BranchLock(models.Model):
    """One row per branch a change request was asked for through ``change_get_or_create``, locked while
    it looks for the branch's open CR and opens one: before the first CR exists there is no other row
    two concurrent posts could both wait on."""

    branch = models.CharField(max_length=255, unique=True)

    def __str__(self) -> str:
        return self.branch


class ImpactedCI(models.Model):
    """One CI a change touches: directly, through a file its manifest sources, or through a ``_common``
    folder it depends on; ``deploy`` is false when what reaches it is documentation (for filtering)."""

    class Reason(models.TextChoices):
        DIRECT = "direct"
        SOURCE = "source", "its manifest sources a changed file"
        COMMON = "common", "depends on a changed _common folder"
        REDEPLOY = "redeploy", "re-deploy what the repository declares"

    change = models.ForeignKey(ChangeRequest, on_delete=models.CASCADE, related_name="impacted")
    path = models.CharField(max_length=1000)
    kind = models.CharField(max_length=20)
    environment = models.CharField(max_length=255, db_index=True)
    machine = models.CharField(max_length=1000, blank=True, db_index=True)
    reason = models.CharField(max_length=10, choices=Reason.choices)
    via = models.CharField(max_length=1000, blank=True,
                           help_text="The _common folder (common) or the changed file (source), for dependent CIs")
    deploy = models.BooleanField(default=True, help_text="Needs a deploy (false: documentation, shown for review)")

    class Meta:
        ordering = ["path"]
        constraints = [models.UniqueConstraint(fields=["change", "path"], name="impacted_once_per_change")]

    def __str__(self) -> str:
        return f"{self.change_id}: {self.path} ({self.reason})"


class Approval(models.Model):
    """A vote on a change request, for the branch head it was given on."""

    class Decision(models.TextChoices):
        APPROVE = "approve"
        REJECT = "reject"

    change = models.ForeignKey(ChangeRequest, on_delete=models.CASCADE, related_name="approvals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=10, choices=Decision.choices)
    comment = models.TextField(blank=True)
    head_sha = models.CharField(max_length=40)
    created_at = models.DateTimeField(default=timezone.now)
    dismissed_at = models.DateTimeField(null=True, blank=True)
    dismissed_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            # An approver counts once per branch head, however many times they click.
            models.UniqueConstraint(
                fields=["change", "user", "head_sha"],
                condition=models.Q(dismissed_at__isnull=True),
                name="one_live_vote_per_user_and_head",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.decision} {self.change_id}"

    @property
    def is_live(self) -> bool:
        return self.dismissed_at is None


class ApprovalPolicy(models.Model):
    """How many approvals a change touching an environment needs (staff-configured)."""

    environment = models.CharField(max_length=255, unique=True)
    required_approvals = models.PositiveSmallIntegerField(default=1)
    self_deploy = models.BooleanField(default=True, help_text="The requester may deploy their own change request")

    class Meta:
        ordering = ["environment"]
        verbose_name_plural = "approval policies"

    def __str__(self) -> str:
        return f"{self.environment}: {self.required_approvals}"

    @staticmethod
    def default_for(environment: str) -> int:
        return 2 if environment == "production" else 1

    @classmethod
    def self_deploy_allowed(cls, environments: list[str]) -> bool:
        """Whether every one of ``environments`` lets a requester deploy their own change request."""
        return not cls.objects.filter(environment__in=environments, self_deploy=False).exists()

    @classmethod
    def required_for(cls, environments: list[str]) -> int:
        """The strictest requirement among ``environments`` (1 when the change touches none)."""
        configured = dict(cls.objects.filter(environment__in=environments).values_list("environment", "required_approvals"))
        return max([configured.get(env, cls.default_for(env)) for env in environments] or [1])


class FreezePeriod(models.Model):
    """A blackout window: nothing but emergency changes may be scheduled inside it."""

    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.CharField(max_length=200)
    environment = models.CharField(max_length=255, blank=True, help_text="Empty: every environment")

    class Meta:
        ordering = ["start"]

    def __str__(self) -> str:
        return f"{self.reason} ({self.start:%Y-%m-%d} – {self.end:%Y-%m-%d})"

    def clean(self) -> None:
        if self.end <= self.start:
            raise ValidationError({"end": "A freeze must end after it starts."})

    @classmethod
    def of_environments(cls, environments: list[str]) -> models.QuerySet[FreezePeriod]:
        """The freezes of these environments and those of every environment."""
        return cls.objects.filter(models.Q(environment="") | models.Q(environment__in=environments))


class ChangeWindow(models.Model):
    """A standing change window: weekly hours in which an environment's changes may be released.

    Hours are in the portal's time zone; a window ends the day it starts (split one that crosses
    midnight in two). An environment without windows is unconstrained.
    """

    environment = models.CharField(max_length=255, db_index=True)
    weekdays = models.JSONField(help_text="Days of the week, 0 = Monday … 6 = Sunday")
    start = models.TimeField(help_text="In the portal's time zone")
    end = models.TimeField(help_text="In the portal's time zone, after the start")
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["environment", "start", "pk"]

    def __str__(self) -> str:
        return f"{self.environment}: {self.describe()}"

    def days(self) -> str:
        return ", ".join(WEEKDAYS[day] for day in sorted(self.weekdays or []) if 0 <= day < 7)

    def describe(self) -> str:
        return f"{self.days()} {self.start:%H:%M}–{self.end:%H:%M}"

    @staticmethod
    def describe_all(windows: list[ChangeWindow]) -> str:
        return f"{'; '.join(w.describe() for w in windows)} {timezone.get_default_timezone_name()}"

    def clean(self) -> None:
        days = self.weekdays
        if not isinstance(days, list) or not days or any(type(d) is not int or not 0 <= d < 7 for d in days):
            raise ValidationError({"weekdays": "Choose at least one day of the week."})
        self.weekdays = sorted(set(days))
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValidationError({"end": "A window must end after it starts, the same day."})

    def contains(self, moment: datetime) -> bool:
        local = portal_time(moment)
        return local.weekday() in self.weekdays and self.start <= local.time() < self.end

    def covers(self, start: datetime, end: datetime) -> bool:
        """Whether one occurrence of this window holds all of start..end."""
        first, last = portal_time(start), portal_time(end)
        return (first.date() == last.date() and first.weekday() in self.weekdays
                and self.start <= first.time() and last.time() <= self.end)

    @classmethod
    def of_environments(cls, environments: list[str]) -> dict[str, list[ChangeWindow]]:
        """The standing windows of these environments, by environment (only those that have some)."""
        found: dict[str, list[ChangeWindow]] = {}
        for window in cls.objects.filter(environment__in=environments):
            found.setdefault(window.environment, []).append(window)
        return found


class Comment(models.Model):
    change = models.ForeignKey(ChangeRequest, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"comment {self.pk} on {self.change_id}"


class AppendOnlyError(Exception):
    """Raised on any attempt to change or delete a record row."""


class ChangeEvent(models.Model):
    """The append-only record: who did what, when, on which commit. Never updated, never deleted."""

    change = models.ForeignKey(ChangeRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=40, db_index=True)
    message = models.TextField(blank=True)
    commit_sha = models.CharField(max_length=40, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action} {self.change_id or ''}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnlyError("The change record is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("The change record is append-only.")


class Baseline(models.Model):
    """A named, tagged state of ``main``."""

    name = models.CharField(max_length=100, unique=True)
    sha = models.CharField(max_length=40)
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class UnauthorizedCommit(models.Model):
    """A commit that reached ``main`` without an approved change request."""

    class Status(models.TextChoices):
        OPEN = "open"
        LINKED = "linked", "linked to a change request"
        ACKNOWLEDGED = "acknowledged"

    sha = models.CharField(max_length=40, unique=True)
    summary = models.CharField(max_length=500)
    author = models.CharField(max_length=200)
    committed_at = models.DateTimeField()
    detected_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN, db_index=True)
    change = models.ForeignKey(ChangeRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-committed_at"]

    def __str__(self) -> str:
        return f"{self.sha[:10]} {self.summary}"


class ReleasedCommit(models.Model):
    """A commit that reached ``main`` through the portal's release of a change request."""

    sha = models.CharField(max_length=40, unique=True)
    change = models.ForeignKey(ChangeRequest, on_delete=models.PROTECT, related_name="released_commits")

    def __str__(self) -> str:
        return f"{self.sha[:10]} ({self.change_id})"
