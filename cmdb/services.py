"""CM identification workflows: syncing the clone with origin, indexing it, reading CIs at any revision.

Writes go through ``repo_sync``; reads of other revisions through ``ci_snapshot`` and friends. Git is
reached only through ``cmdb.gitrepo``.
"""

from __future__ import annotations

import logging
import os
import posixpath
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from cmdb import indexer, layout, lint
from cmdb.gitrepo import CommitInfo, ConfigRepo, GitError, TreeEntry, UnknownRevision
from cmdb.indexer import index_commit
from cmdb.markdown import render_markdown
from cmdb.models import Commit, ConfigItem, SyncRun, SyncState, WebhookDelivery
from cmdb.secrets import SECRETS_FILE, is_secret
from cmdb.signals import index_updated, sync_failed

log = logging.getLogger(__name__)

STALE_SYNC = timedelta(hours=1)  # a sync "running" longer than this died with its worker


class SyncError(Exception):
    """A sync failed; the previous index is intact. ``str(error)`` is shown to users."""


# ====================================================================================================
# The clone
# ====================================================================================================


_clone: tuple[tuple, ConfigRepo] | None = None


def get_repo() -> ConfigRepo:
    """The portal's clone (created on first use).

    Opened once per process and configuration (a page asks for it several times), and opened again
    when the configuration changes (that sets origin's address in the clone again) or the clone was
    removed meanwhile. A ConfigRepo keeps no state between calls but its path, so threads may share
    it; the process id keeps a forked worker from using its parent's.
    """
    global _clone
    key = (os.getpid(), str(settings.CMDB_CLONE_DIR), settings.CMDB_REPO_URL, settings.CMDB_GIT_TIMEOUT)
    if _clone is not None and _clone[0] == key and (_clone[1].path / "HEAD").exists():
        return _clone[1]
    repo = ConfigRepo.open_or_clone(settings.CMDB_CLONE_DIR, settings.CMDB_REPO_URL, timeout=settings.CMDB_GIT_TIMEOUT)
    _clone = (key, repo)
    return repo


def repo_with(*shas: str) -> ConfigRepo:
    """This host's clone, holding the commits ``shas`` (empty ones are ignored): the clone a worker
    reads a run's revision from. Each worker host has a clone of its own (``CMDB_DATA_DIR``), synced
    only when a sync runs there, so a batch may name a commit another host fetched (the web process
    that started the run, a newer push): then origin is fetched once. UnknownRevision when origin has
    no such commit either; RepositoryUnavailable when it cannot be reached."""
    repo = get_repo()
    wanted = [sha for sha in shas if sha]
    if all(has_commit(repo, sha) for sha in wanted):
        return repo
    try:
        repo.fetch(settings.CMDB_BRANCH)
    except GitError:
        # Two processes of one host fetching at once: the other one may have brought the commits.
        if not all(has_commit(repo, sha) for sha in wanted):
            raise
    missing = [sha for sha in wanted if not has_commit(repo, sha)]
    if missing:
        raise UnknownRevision(f"Commit {missing[0][:12]} is neither in this host's clone nor on origin.")
    return repo


def has_commit(repo: ConfigRepo, sha: str) -> bool:
    """Whether the commit ``sha`` is in ``repo`` now (no fetch)."""
    try:
        return repo.resolve(sha) == sha
    except UnknownRevision:
        return False


def main_sha(repo: ConfigRepo) -> str:
    """The head of the portal's branch as last fetched from origin (the clone's own branch when
    origin's ref is missing), or "" when the repository has no such branch yet."""
    for lookup in (repo.origin_head, repo.resolve):
        try:
            return lookup(settings.CMDB_BRANCH)
        except GitError:  # UnknownRevision included
            continue
    return ""


def indexed_sha() -> str | None:
    state = SyncState.objects.select_related("indexed_commit").filter(pk=1).first()
    return state.indexed_commit.sha if state and state.indexed_commit else None


# ====================================================================================================
# Sync: serialized across processes, with requests made during a run coalesced into one more pass
# ====================================================================================================


def repo_sync(*, trigger: str, acting_user=None) -> SyncRun | None:
    """Fetch origin, hard-reset the clone's branch to ``origin/<branch>`` and re-index.

    Returns the last SyncRun this call performed, or None when another sync was running: then the
    request is recorded (``pending``) and the running sync does one more pass before it stops, so no
    request is lost. Raises SyncError when the sync failed (the previous index stays as it was).
    """
    with transaction.atomic():
        state = SyncState.objects.select_for_update().get_or_create(pk=1, defaults={"branch": settings.CMDB_BRANCH})[0]
        now = timezone.now()
        if state.running_since and now - state.running_since < STALE_SYNC:
            state.pending = True
            state.save(update_fields=["pending"])
            return None
        state.running_since = now
        state.pending = False
        state.save(update_fields=["running_since", "pending"])

    run: SyncRun | None = None
    error: SyncError | None = None
    try:
        while True:
            try:
                run = _sync_once(trigger=trigger, acting_user=acting_user)
                error = None
            except SyncError as exc:
                error = exc
            with transaction.atomic():
                state = SyncState.objects.select_for_update().get(pk=1)
                if not state.pending:
                    state.running_since = None
                    state.save(update_fields=["running_since"])
                    break
                state.pending = False
                state.save(update_fields=["pending"])
                trigger = f"{trigger}+coalesced" if "coalesced" not in trigger else trigger
    except BaseException:
        SyncState.objects.filter(pk=1).update(running_since=None)
        raise
    if error:
        raise error
    return run


def _sync_once(*, trigger: str, acting_user=None) -> SyncRun:
    started = time.monotonic()
    run = SyncRun.objects.create(trigger=trigger, requested_by=acting_user)
    state = SyncState.get()
    previous = state.indexed_commit.sha if state.indexed_commit else None
    try:
        repo = get_repo()
        target = repo.fetch(settings.CMDB_BRANCH)
        repo.reset_branch(settings.CMDB_BRANCH, target)
        with transaction.atomic():
            mode, changed = index_commit(repo, target, previous=previous)
            _record_success(run, target, previous, mode, changed, started)
    except Exception as exc:  # noqa: BLE001 - any failure must be recorded; the index rolled back
        message = str(exc) or exc.__class__.__name__
        if not isinstance(exc, GitError):
            log.exception("indexing failed")
            message = f"Indexing failed ({exc.__class__.__name__}): {message}"
        else:
            log.warning("sync failed: %s", message)
        SyncRun.objects.filter(pk=run.pk).update(
            status=SyncRun.Status.FAILED,
            finished_at=timezone.now(),
            error=message,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        SyncState.objects.filter(pk=1).update(last_error=message, last_error_at=timezone.now())
        for receiver, result in sync_failed.send_robust(sender=SyncRun, run_id=run.pk, error=message):
            if isinstance(result, Exception):
                log.error("sync_failed receiver %s failed: %s", receiver, result, exc_info=result)
        raise SyncError(message) from exc
    run.refresh_from_db()
    # Listeners (change control) refresh branches and scan main; their failures never undo the index.
    for receiver, result in index_updated.send_robust(sender=SyncRun, previous=previous, current=run.to_sha):
        if isinstance(result, Exception):
            log.error("index_updated receiver %s failed: %s", receiver, result, exc_info=result)
    return run


def _record_success(run: SyncRun, target: str, previous: str | None, mode: str, changed: int, started: float) -> None:
    now = timezone.now()
    commit = Commit.objects.get(sha=target)
    fields = {"indexed_commit": commit, "indexed_at": now, "last_error": "", "last_error_at": None,
              "branch": settings.CMDB_BRANCH}
    if mode != SyncRun.Mode.NOOP or not SyncState.objects.filter(pk=1).exclude(stats={}).exists():
        fields["stats"] = indexer.compute_stats()
    SyncState.objects.filter(pk=1).update(**fields)
    SyncRun.objects.filter(pk=run.pk).update(
        status=SyncRun.Status.SUCCEEDED,
        finished_at=now,
        mode=mode,
        from_sha=previous or "",
        to_sha=target,
        paths_changed=changed,
        duration_ms=int((time.monotonic() - started) * 1000),
    )


def sync_request(*, trigger: str, acting_user=None) -> None:
    """Ask for a sync in the background (after the current transaction commits)."""
    from cmdb.tasks import sync_repository

    user_id = acting_user.pk if acting_user is not None else None
    transaction.on_commit(lambda: sync_repository.delay(trigger=trigger, user_id=user_id))


# ====================================================================================================
# Reading: URLs, README rendering, CIs and artifacts at any revision
# ====================================================================================================


def portal_url(kind: str, path: str, rev: str | None = None) -> str:
    """The portal URL of a repository path: ``page`` (CI), ``file`` (artifact page) or ``raw`` (blob)."""
    if kind == "raw":
        url = reverse("cmdb:raw", kwargs={"path": path})
    elif kind == "file":
        url = reverse("cmdb:artifact_detail", kwargs={"path": path})
    else:
        ref = layout.ci_for_dir(path)
        if ref is None:
            owner = layout.owning_ci(path + "/x")
            path = owner.path if owner else ""
        url = reverse("cmdb:ci_detail", kwargs={"path": path}) if path else reverse("cmdb:root")
    return f"{url}?{urlencode({'rev': rev})}" if rev else url


def path_url_at(path: str, sha: str) -> str:
    """The page of ``path`` at commit ``sha``: the file's page for a file (a file's history links its
    commits with its path), else the CI page of the folder, or of the owning CI when the path is gone."""
    entry = get_repo().entry(sha, path)
    if entry is not None and entry.type == "blob":
        return portal_url("file", path, sha)
    if entry is None and layout.ci_for_dir(path) is not None:
        path = posixpath.dirname(path)
    return portal_url("page", path, sha)


def render_readme(text: str, ci_path: str, rev: str | None) -> str:
    return render_markdown(text, base_dir=ci_path, resolver=lambda kind, path: portal_url(kind, path, rev))


def ci_readme_html(ci: ConfigItem) -> str:
    """The CI's rendered README at the indexed commit, rendered once and kept."""
    if ci.has_readme and not ci.readme_html and ci.readme_markdown.strip():
        ci.readme_html = render_readme(ci.readme_markdown, ci.path, None)
        ConfigItem.objects.filter(pk=ci.pk, readme_sha=ci.readme_sha).update(readme_html=ci.readme_html)
    return ci.readme_html


@dataclass
class ArtifactInfo:
    """An artifact as listed at some revision (mirrors the Artifact model's fields)."""

    path: str
    name: str
    size: int
    blob_sha: str
    mode: str
    is_secret: bool
    is_image: bool
    is_symlink: bool
    is_binary: bool | None = None  # unknown until the content is read

    @property
    def relative_path(self) -> str:
        owner = layout.owning_ci(self.path)
        return layout.relative_to_ci(self.path, owner.path if owner else "")


@dataclass
class ChildInfo:
    path: str
    name: str
    kind: str
    artifact_count: int | None = None  # from the index; None when read from Git
    warning_count: int | None = None


@dataclass
class CISnapshot:
    """A CI as it is at one revision: from the index for the indexed commit, from Git otherwise."""

    path: str
    kind: str
    name: str
    sha: str
    rev: str | None  # what the user asked for; None means the indexed commit
    readme_markdown: str
    readme_html: str
    has_readme: bool
    artifacts: list
    children: list
    item: ConfigItem | None = None  # set when read from the index

    @property
    def is_indexed(self) -> bool:
        return self.item is not None


def resolve_rev(rev: str | None) -> tuple[str, str | None]:
    """(sha, rev-to-carry-in-links) for a ``?rev=`` value; None means the indexed commit."""
    current = indexed_sha()
    if not rev:
        if current is None:
            raise UnknownRevision("The repository has not been indexed yet.")
        return current, None
    sha = get_repo().resolve(rev)
    return sha, (None if sha == current else rev)


def ci_snapshot(path: str, rev: str | None) -> CISnapshot | None:
    """The CI at ``path`` at revision ``rev`` (None: the indexed one); None if there is no such CI."""
    ref = layout.ci_for_dir(path)
    if ref is None:
        return None
    sha, carry = resolve_rev(rev)
    if carry is None:
        item = ConfigItem.objects.select_related("last_commit").filter(path=path).first()
        if item is None:
            return None
        return CISnapshot(
            path=path, kind=item.kind, name=item.name, sha=sha, rev=None,
            readme_markdown=item.readme_markdown, readme_html=ci_readme_html(item), has_readme=item.has_readme,
            artifacts=list(item.artifacts.all()),
            # Tuples, not model instances: an environment lists a thousand machines, the page shows 100.
            children=[ChildInfo(*row) for row in ConfigItem.objects.filter(parent=item).order_by("path").values_list(
                "path", "name", "kind", "artifact_count", "warning_count")],
            item=item,
        )
    repo = get_repo()
    recursive = ref.kind in (layout.APPLICATION, layout.COMMON_KIND)
    entries = repo.ls_tree(sha, path, recursive=recursive) if path else repo.ls_tree(sha, recursive=False)
    # A listing of a file's path lists the file itself: a file is never a CI, at any revision.
    if not entries or any(e.path == path for e in entries):
        return None
    patterns = indexer.secret_patterns(repo, sha)
    readme_entry = None
    artifacts: list[ArtifactInfo] = []
    children: list[ChildInfo] = []
    for e in entries:
        if e.type == "tree":
            child = layout.ci_for_dir(e.path)
            if child is not None and not layout.is_hidden(e.path + "/x"):
                children.append(ChildInfo(e.path, child.name, child.kind))
            continue
        if layout.is_hidden(e.path):
            continue
        if layout.is_readme(e.path) and posixpath.dirname(e.path) == path:
            readme_entry = e
            continue
        artifacts.append(ArtifactInfo(
            path=e.path, name=posixpath.basename(e.path), size=e.size or 0, blob_sha=e.sha, mode=e.mode,
            is_secret=is_secret(e.path, None, patterns), is_image=layout.is_image(e.path), is_symlink=e.is_symlink,
        ))
    text = lint.decode_readme(repo.read_blob(readme_entry.sha))[0] if readme_entry else ""
    return CISnapshot(
        path=path, kind=ref.kind, name=ref.name, sha=sha, rev=carry,
        readme_markdown=text, readme_html=render_readme(text, path, carry) if text.strip() else "",
        has_readme=readme_entry is not None, artifacts=artifacts, children=children,
    )


@dataclass
class BlobView:
    """One file at one revision, with its content (None for submodules)."""

    path: str
    sha: str
    rev: str | None
    entry: TreeEntry
    content: bytes
    is_secret: bool
    is_binary: bool
    is_image: bool


def blob_at(path: str, rev: str | None) -> BlobView | None:
    """The file at ``path`` in ``rev`` (None: indexed commit), or None when there is no such file."""
    if layout.is_hidden(path) and path != SECRETS_FILE:
        return None
    sha, carry = resolve_rev(rev)
    repo = get_repo()
    entry = repo.entry(sha, path)
    if entry is None or entry.type != "blob":
        return None
    content = repo.read_blob(entry.sha)
    patterns = indexer.secret_patterns(repo, sha)
    return BlobView(
        path=path, sha=sha, rev=carry, entry=entry, content=content,
        is_secret=is_secret(path, content, patterns),
        is_binary=not entry.is_symlink and b"\0" in content[:8000],
        is_image=layout.is_image(path),
    )


def ci_history(path: str, rev: str | None, *, limit: int = 50, skip: int = 0) -> list[CommitInfo]:
    """Commits that touched the CI's folder, newest first."""
    sha, _ = resolve_rev(rev)
    return get_repo().log(sha, paths=[path] if path else [], max_count=limit, skip=skip)


def ci_diff(path: str, old: str | None, new: str) -> list:
    """Per-file diffs of the CI between two revisions (``old`` None: the commit's parent)."""
    repo = get_repo()
    new_sha = repo.resolve(new)
    if old is None:
        return repo.commit_diff(new_sha, paths=[path] if path else [])
    return repo.diff(repo.resolve(old), new_sha, paths=[path] if path else [])


def commit_info(rev: str) -> CommitInfo:
    return get_repo().commit(rev)


def recent_commits(limit: int = 10) -> list[CommitInfo]:
    sha = indexed_sha()
    return get_repo().log(sha, max_count=limit) if sha else []


def webhook_delivery_record(*, keys: list[str]) -> bool:
    """Remember a push-webhook delivery by its keys (delivery id, body digest): True the first time,
    False for a replay of any of them. Deliveries older than ``CMDB_WEBHOOK_REPLAY_DAYS`` are forgotten."""
    cutoff = timezone.now() - timedelta(days=settings.CMDB_WEBHOOK_REPLAY_DAYS)
    try:
        with transaction.atomic():
            WebhookDelivery.objects.filter(received_at__lt=cutoff).delete()
            if WebhookDelivery.objects.filter(key__in=keys).exists():
                return False
            WebhookDelivery.objects.bulk_create([WebhookDelivery(key=k[:200]) for k in dict.fromkeys(keys)])
    except IntegrityError:
        return False  # the same delivery twice at the same moment: the other one is acted on
    return True
