"""The CM identification database: the index of the configuration repository at its indexed commit.

The index is a cache of the repository's ``main`` branch: it can always be rebuilt from Git. Other
revisions are read from Git on demand (see ``services.ci_snapshot``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection, models
from django.urls import reverse
from django.utils import timezone

from cmdb import layout


class Commit(models.Model):
    """A commit of the configuration repository that the index refers to."""

    sha = models.CharField(max_length=40, unique=True)
    author_name = models.CharField(max_length=200)
    author_email = models.CharField(max_length=200)
    committed_at = models.DateTimeField(db_index=True)
    summary = models.CharField(max_length=500)

    class Meta:
        ordering = ["-committed_at"]

    def __str__(self) -> str:
        return f"{self.sha[:10]} {self.summary}"

    @property
    def short_sha(self) -> str:
        return self.sha[:10]


class ConfigItemQuerySet(models.QuerySet):
    def under(self, path: str) -> ConfigItemQuerySet:
        """The CI at ``path`` and every CI below it, in a form the unique path index can serve."""
        path = path.strip("/")
        if connection.vendor == "sqlite":
            # SQLite's LIKE is case-insensitive and skips the index; a range on the BINARY-collated
            # column does not ("0" is the character after "/").
            return self.filter(models.Q(path=path) | models.Q(path__gt=path + "/", path__lt=path + "0"))
        # PostgreSQL serves LIKE 'x/%' from the varchar_pattern_ops index Django adds to the column.
        return self.filter(models.Q(path=path) | models.Q(path__startswith=path + "/"))

    def in_machine(self, name: str) -> ConfigItemQuerySet:
        """Machines named ``name`` (in any environment) and the applications and ``_common`` below them."""
        return self.filter(models.Q(depth=2, name=name) | models.Q(depth=3, parent__name=name, parent__depth=2))


class ConfigItem(models.Model):
    """A configuration item: the root, an environment, a machine, an application or a ``_common`` folder."""

    class Kind(models.TextChoices):
        ROOT = layout.ROOT
        ENVIRONMENT = layout.ENVIRONMENT
        MACHINE = layout.MACHINE
        APPLICATION = layout.APPLICATION
        COMMON = layout.COMMON_KIND

    path = models.CharField(max_length=1000, unique=True)
    name = models.CharField(max_length=255, db_index=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, db_index=True)
    depth = models.PositiveSmallIntegerField()
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    has_readme = models.BooleanField(default=False)
    readme_sha = models.CharField(max_length=40, blank=True)
    readme_markdown = models.TextField(blank=True)
    readme_html = models.TextField(blank=True)
    last_commit = models.ForeignKey(Commit, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    artifact_count = models.PositiveIntegerField(default=0)
    warning_count = models.PositiveIntegerField(default=0)

    objects = ConfigItemQuerySet.as_manager()

    class Meta:
        ordering = ["path"]
        indexes = [models.Index(fields=["parent", "kind", "name"])]

    def __str__(self) -> str:
        return self.path or "/"

    def get_absolute_url(self) -> str:
        return reverse("cmdb:ci_detail", kwargs={"path": self.path}) if self.path else reverse("cmdb:root")

    @property
    def environment_name(self) -> str:
        return self.path.split("/")[0] if self.path else ""

    def ancestors_paths(self) -> list[str]:
        """Paths of the CIs above this one, root first (for breadcrumbs)."""
        parts = self.path.split("/") if self.path else []
        return ["/".join(parts[:i]) for i in range(1, len(parts))]


class WebhookDelivery(models.Model):
    """A push-webhook delivery already acted on, by delivery id and by body digest: a replayed
    delivery is answered without another sync. Rows older than ``CMDB_WEBHOOK_REPLAY_DAYS`` are pruned."""

    key = models.CharField(max_length=200, unique=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return self.key


class SecretPath(models.Model):
    """A path once indexed as a secret. Kept for ever: it stays secret at every revision, whatever the
    ``.cmdb-secrets`` of the revision a caller picks says (see ``indexer.secret_patterns``)."""

    path = models.CharField(max_length=1000, unique=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.path


class Artifact(models.Model):
    """A file of a CI at the indexed commit."""

    ci = models.ForeignKey(ConfigItem, on_delete=models.CASCADE, related_name="artifacts")
    path = models.CharField(max_length=1000, unique=True)
    name = models.CharField(max_length=255)
    size = models.BigIntegerField()
    blob_sha = models.CharField(max_length=40, db_index=True)
    mode = models.CharField(max_length=6)
    is_binary = models.BooleanField(default=False)
    is_secret = models.BooleanField(default=False)
    is_image = models.BooleanField(default=False)
    is_symlink = models.BooleanField(default=False)
    symlink_target = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["path"]
        permissions = [("view_secret", "Can see secret artifacts unmasked")]

    def __str__(self) -> str:
        return self.path

    def get_absolute_url(self) -> str:
        return reverse("cmdb:artifact_detail", kwargs={"path": self.path})

    @property
    def relative_path(self) -> str:
        return layout.relative_to_ci(self.path, self.ci.path)


class LintWarning(models.Model):
    """Something in the repository that is not as the layout convention wants it."""

    class Code(models.TextChoices):
        MISSING_README = "missing-readme", "Missing README"
        EMPTY_README = "empty-readme", "Empty README"
        STRAY_FILE = "stray-file", "File at environment level"
        NOT_UTF8 = "readme-not-utf8", "README not in UTF-8"
        SYMLINK = "symlink", "Symbolic link"
        SYMLINK_OUTSIDE = "symlink-outside", "Symbolic link pointing outside the repository"
        BAD_NAME = "bad-name", "Directory name with spaces or non-ASCII letters"
        LARGE_FILE = "large-file", "Very large file"
        BINARY_FILE = "binary-file", "Binary file"
        PLAINTEXT_SECRET = "plaintext-secret", "Secret committed in plain text"
        DUPLICATE = "duplicate-artifact", "Same content in several CIs"
        SUBMODULE = "submodule", "Git submodule"
        MANIFEST = "manifest", "Manifest problem"

    class Severity(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        ERROR = "error"

    ci = models.ForeignKey(ConfigItem, null=True, blank=True, on_delete=models.CASCADE, related_name="warnings")
    path = models.CharField(max_length=1000)
    code = models.CharField(max_length=40, choices=Code.choices, db_index=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    message = models.TextField()
    # Set on duplicate-artifact warnings, so an incremental sync can recompute only the shas it touched.
    blob_sha = models.CharField(max_length=40, blank=True, db_index=True)

    class Meta:
        ordering = ["path", "code"]
        # Serves the lint page's and API's default ordering without sorting every warning per request.
        indexes = [models.Index(fields=["path", "code"], name="cmdb_lint_path_code")]

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SyncState(models.Model):
    """The one row that says which commit the index holds and how the last sync went."""

    branch = models.CharField(max_length=255, default="main")
    indexed_commit = models.ForeignKey(Commit, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    indexed_at = models.DateTimeField(null=True, blank=True)
    running_since = models.DateTimeField(null=True, blank=True)
    # Set when a sync is asked for while one runs: the running one does another pass (coalescing).
    pending = models.BooleanField(default=False)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    # Figures of the index (counts per kind, lint per code, per environment), stored by each sync so
    # the home page reads one row instead of aggregating the whole index per request.
    stats = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"sync state ({self.indexed_commit_id})"

    @classmethod
    def get(cls) -> SyncState:
        state, _ = cls.objects.get_or_create(pk=1, defaults={"branch": settings.CMDB_BRANCH})
        return state


class SyncRun(models.Model):
    """One sync of the clone with origin and its re-index: the history shown to staff."""

    class Mode(models.TextChoices):
        FULL = "full"
        INCREMENTAL = "incremental"
        NOOP = "noop", "up to date"

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    trigger = models.CharField(max_length=40)  # command, button, api, periodic, webhook
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    mode = models.CharField(max_length=20, choices=Mode.choices, blank=True)
    from_sha = models.CharField(max_length=40, blank=True)
    to_sha = models.CharField(max_length=40, blank=True)
    paths_changed = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"sync {self.pk} {self.status}"
