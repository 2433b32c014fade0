"""CM identification workflows: syncing the clone with origin, indexing it, reading CIs at any revision.

Writes go through ``repo_sync``; reads of other revisions through ``ci_snapshot`` and friends. Git is
reached only through ``cmdb.gitrepo``.
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from cmdb import layout, search
from cmdb.gitrepo import CommitInfo, ConfigRepo, GitError, TreeEntry, UnknownRevision
from cmdb.markdown import render_markdown
from cmdb.models import Artifact, Commit, ConfigItem, LintWarning, SyncRun, SyncState
from cmdb.secrets import SECRETS_FILE, SecretPatterns, has_private_key, is_secret
from cmdb.signals import index_updated

log = logging.getLogger(__name__)

SNIFF_LIMIT = 1024 * 1024  # blobs above this are not read during indexing (binary by extension)
STALE_SYNC = timedelta(hours=1)  # a sync "running" longer than this died with its worker
INCREMENTAL_MAX_PATHS = 5000  # beyond this many changed paths a full index is as fast
DUPLICATE_MIN_BYTES = 64  # tiny files (empty, "\n") are the same everywhere by nature
TEXT_EXTENSIONS = {".conf", ".cfg", ".ini", ".txt", ".md", ".yml", ".yaml", ".json", ".sh", ".py", ".xml", ".csv", ".sql"}
Code = LintWarning.Code
Severity = LintWarning.Severity


class SyncError(Exception):
    """A sync failed; the previous index is intact. ``str(error)`` is shown to users."""


# ====================================================================================================
# The clone
# ====================================================================================================


def get_repo() -> ConfigRepo:
    """The portal's clone (created on first use)."""
    return ConfigRepo.open_or_clone(settings.CMDB_CLONE_DIR, settings.CMDB_REPO_URL, timeout=settings.CMDB_GIT_TIMEOUT)


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
    SyncState.objects.filter(pk=1).update(
        indexed_commit=commit, indexed_at=now, last_error="", last_error_at=None, branch=settings.CMDB_BRANCH
    )
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
# Indexing
# ====================================================================================================


@dataclass
class _CIContent:
    """What one CI directory holds at a commit: its README entry and the files it owns."""

    ref: layout.CIRef
    readme: TreeEntry | None = None
    files: list[TreeEntry] = field(default_factory=list)


def index_commit(repo: ConfigRepo, sha: str, *, previous: str | None) -> tuple[str, int]:
    """Bring the index to ``sha``; must run inside a transaction. Returns (mode, paths changed)."""
    if previous == sha and ConfigItem.objects.exists():
        _ensure_commit_rows(repo, [sha])
        return SyncRun.Mode.NOOP, 0
    if previous and _can_increment(repo, previous, sha):
        changes = repo.changed_paths(previous, sha)
        touches_settings = any(c.path == SECRETS_FILE for c in changes)
        if len(changes) <= INCREMENTAL_MAX_PATHS and not touches_settings:
            _index_incremental(repo, previous, sha, [c.path for c in changes])
            return SyncRun.Mode.INCREMENTAL, len(changes)
    count = _index_full(repo, sha)
    return SyncRun.Mode.FULL, count


def _can_increment(repo: ConfigRepo, previous: str, sha: str) -> bool:
    try:
        repo.resolve(previous)
    except UnknownRevision:
        return False  # the indexed commit is gone: history was rewritten and garbage-collected
    return repo.is_ancestor(previous, sha) and ConfigItem.objects.exists()


def _group_by_ci(entries: Iterable[TreeEntry]) -> dict[str, _CIContent]:
    contents: dict[str, _CIContent] = {"": _CIContent(layout.CIRef("", layout.ROOT))}
    for entry in entries:
        if entry.type == "tree":
            continue
        owner = layout.owning_ci(entry.path)
        if owner is None:
            continue
        # Every folder on the way down to the owner is a CI too.
        parts = owner.path.split("/") if owner.path else []
        for i in range(1, len(parts) + 1):
            dir_path = "/".join(parts[:i])
            if dir_path not in contents:
                ref = layout.ci_for_dir(dir_path)
                if ref is not None:
                    contents[dir_path] = _CIContent(ref)
        content = contents[owner.path]
        if layout.is_readme(entry.path) and entry.type == "blob" and not entry.is_symlink:
            content.readme = entry
        else:
            content.files.append(entry)
    return contents


def _blobs_to_read(contents: Iterable[_CIContent]) -> list[str]:
    shas = []
    for content in contents:
        if content.readme:
            shas.append(content.readme.sha)
        for f in content.files:
            if f.type == "blob" and (f.size or 0) <= SNIFF_LIMIT:
                shas.append(f.sha)
    return shas


def _secret_patterns(repo: ConfigRepo, sha: str) -> SecretPatterns:
    entry = repo.entry(sha, SECRETS_FILE)
    if entry is None or entry.type != "blob":
        return SecretPatterns()
    return SecretPatterns(repo.read_blob(entry.sha).decode("utf-8", errors="replace"))


def _index_full(repo: ConfigRepo, sha: str) -> int:
    entries = repo.ls_tree(sha)
    contents = _group_by_ci(entries)
    blobs = repo.read_blobs(_blobs_to_read(contents.values()))
    last = _last_commits(repo.log_with_paths(sha), set(contents))
    _ensure_commit_rows(repo, [sha], extra=last.values())
    patterns = _secret_patterns(repo, sha)

    search.clear()
    LintWarning.objects.all().delete()
    Artifact.objects.all().delete()
    ConfigItem.objects.all().delete()
    _write_cis(sorted(contents.values(), key=lambda c: c.ref.depth), blobs, last, patterns, existing={})
    _recompute_duplicates(None)
    return len(entries)


def _index_incremental(repo: ConfigRepo, previous: str, sha: str, paths: list[str]) -> None:
    affected: set[str] = set()
    for path in paths:
        affected.update(layout.ci_dirs_of(path))
    # Re-read each affected CI directory at the new commit: application and _common folders own their
    # whole subtree; the root, environments and machines own only the files directly inside them.
    listing: list[TreeEntry] = []
    for ci_path in sorted(affected):
        ref = layout.ci_for_dir(ci_path)
        if ref is None:
            continue
        recursive = ref.kind in (layout.APPLICATION, layout.COMMON_KIND)
        entries = repo.ls_tree(sha, ci_path, recursive=recursive) if ci_path else repo.ls_tree(sha, recursive=False)
        if not recursive:
            # A sub-folder here is a child CI: list one file of it so the CI is known to exist.
            listing.extend(e for e in entries if e.type != "tree")
            for sub in (e for e in entries if e.type == "tree"):
                sub_ref = layout.ci_for_dir(sub.path)
                if sub_ref is not None and sub.path not in affected:
                    listing.append(TreeEntry(sub.path + "/.exists", "100644", "marker", sub.sha, 0))
        else:
            listing.extend(entries)
    contents = {p: c for p, c in _group_by_ci(listing).items() if p in affected}
    for content in contents.values():
        content.files = [f for f in content.files if f.type != "marker"]

    existing = {ci.path: ci for ci in ConfigItem.objects.filter(path__in=affected)}
    gone = [p for p in affected if p not in contents and p in existing]
    old_shas = set(Artifact.objects.filter(ci__path__in=affected).values_list("blob_sha", flat=True))
    blobs = repo.read_blobs(_blobs_to_read(contents.values()))
    last = _last_commits(repo.log_with_paths(sha, since=previous), set(contents))
    _ensure_commit_rows(repo, [sha], extra=last.values())
    patterns = _secret_patterns(repo, sha)

    ids = [existing[p].pk for p in affected if p in existing]
    search.replace_documents([], delete_ids=ids)
    LintWarning.objects.filter(ci_id__in=ids).exclude(code=Code.DUPLICATE).delete()
    Artifact.objects.filter(ci_id__in=ids).delete()
    ConfigItem.objects.filter(path__in=gone).delete()
    _write_cis(sorted(contents.values(), key=lambda c: c.ref.depth), blobs, last, patterns, existing=existing)
    new_shas = set(Artifact.objects.filter(ci__path__in=list(contents)).values_list("blob_sha", flat=True))
    _recompute_duplicates(old_shas | new_shas)


def _last_commits(history: Iterable[tuple[CommitInfo, list[str]]], wanted: set[str]) -> dict[str, CommitInfo]:
    """For each CI directory in ``wanted``, the newest commit that changed anything below it."""
    found: dict[str, CommitInfo] = {}
    for info, paths in history:
        for path in paths:
            for ci_path in layout.ci_dirs_of(path):
                if ci_path in wanted and ci_path not in found:
                    found[ci_path] = info
        if len(found) == len(wanted):
            break
    return found


def _ensure_commit_rows(repo: ConfigRepo, shas: list[str], extra: Iterable[CommitInfo] = ()) -> dict[str, Commit]:
    infos = {i.sha: i for i in extra}
    for sha in shas:
        if sha not in infos:
            infos[sha] = repo.commit(sha)
    have = {c.sha: c for c in Commit.objects.filter(sha__in=list(infos))}
    Commit.objects.bulk_create(
        [
            Commit(
                sha=i.sha,
                author_name=i.author_name[:200],
                author_email=i.author_email[:200],
                committed_at=i.committed_at,
                summary=i.summary[:500],
            )
            for sha, i in infos.items()
            if sha not in have
        ]
    )
    return {c.sha: c for c in Commit.objects.filter(sha__in=list(infos))}


def _decode_readme(raw: bytes) -> tuple[str, bool]:
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), False


def _is_binary(entry: TreeEntry, content: bytes | None) -> bool:
    if content is None:
        return posixpath.splitext(entry.path)[1].lower() not in TEXT_EXTENSIONS
    return b"\0" in content[:8000]


def _write_cis(
    contents: list[_CIContent],
    blobs: dict[str, bytes],
    last: dict[str, CommitInfo],
    patterns: SecretPatterns,
    *,
    existing: dict[str, ConfigItem],
) -> None:
    """Create or update CI rows (parents first), their artifacts, warnings and search documents."""
    commit_ids = dict(Commit.objects.filter(sha__in=[c.sha for c in last.values()]).values_list("sha", "pk"))
    known_ids = {p: ci.pk for p, ci in existing.items()}
    parent_paths = {c.ref.parent_path for c in contents if c.ref.parent_path}
    known_ids.update(ConfigItem.objects.filter(path__in=parent_paths - set(known_ids)).values_list("path", "pk"))

    by_depth: dict[int, list[_CIContent]] = defaultdict(list)
    for content in contents:
        by_depth[content.ref.depth].append(content)

    artifacts: list[Artifact] = []
    warnings: list[LintWarning] = []
    docs: list[tuple[int, str, str, str]] = []
    for depth in sorted(by_depth):
        new_rows: list[ConfigItem] = []
        updated_rows: list[ConfigItem] = []
        for content in by_depth[depth]:
            ref = content.ref
            row = existing.get(ref.path) or ConfigItem(path=ref.path)
            row.name, row.kind, row.depth = ref.name, ref.kind, ref.depth
            row.parent_id = known_ids.get(ref.parent_path) if ref.parent_path is not None else None
            if content.readme:
                if row.readme_sha != content.readme.sha or not row.has_readme:
                    text, _ = _decode_readme(blobs.get(content.readme.sha, b""))
                    row.readme_markdown, row.readme_html = text, ""  # rendered on first view
                row.readme_sha, row.has_readme = content.readme.sha, True
            else:
                row.readme_sha, row.readme_markdown, row.readme_html, row.has_readme = "", "", "", False
            commit = last.get(ref.path)
            if commit is not None:
                row.last_commit_id = commit_ids.get(commit.sha)
            row.artifact_count = len(content.files)
            (updated_rows if row.pk else new_rows).append(row)
        ConfigItem.objects.bulk_create(new_rows)
        ConfigItem.objects.bulk_update(
            updated_rows,
            ["name", "kind", "depth", "parent", "readme_sha", "readme_markdown", "readme_html", "has_readme",
             "last_commit", "artifact_count"],
        )
        for content, row in _pair(by_depth[depth], new_rows + updated_rows):
            known_ids[row.path] = row.pk
            ci_warnings = _lint_ci(content, blobs)
            for entry in content.files:
                data = blobs.get(entry.sha) if entry.type == "blob" else None
                art = _artifact_row(row, entry, data, patterns)
                artifacts.append(art)
                ci_warnings.extend(_lint_artifact(art, entry, data))
            for w in ci_warnings:
                w.ci_id = row.pk
            warnings.extend(ci_warnings)
            docs.append((row.pk, row.name, row.path, row.readme_markdown))
    Artifact.objects.bulk_create(artifacts, batch_size=2000)
    LintWarning.objects.bulk_create(warnings, batch_size=2000)
    search.replace_documents(docs)


def _pair(contents: list[_CIContent], rows: list[ConfigItem]) -> list[tuple[_CIContent, ConfigItem]]:
    by_path = {r.path: r for r in rows}
    return [(c, by_path[c.ref.path]) for c in contents]


def _artifact_row(ci: ConfigItem, entry: TreeEntry, data: bytes | None, patterns: SecretPatterns) -> Artifact:
    target = ""
    if entry.is_symlink and data is not None:
        target = data.decode("utf-8", errors="replace")
    return Artifact(
        ci_id=ci.pk,
        path=entry.path,
        name=posixpath.basename(entry.path),
        size=entry.size or 0,
        blob_sha=entry.sha,
        mode=entry.mode,
        is_binary=entry.type == "blob" and not entry.is_symlink and _is_binary(entry, data),
        is_secret=is_secret(entry.path, data, patterns),
        is_image=layout.is_image(entry.path),
        is_symlink=entry.is_symlink,
        symlink_target=target[:1000],
    )


def _bad_name(name: str) -> bool:
    return any(ch.isspace() for ch in name) or not name.isascii()


def _lint_ci(content: _CIContent, blobs: dict[str, bytes]) -> list[LintWarning]:
    ref = content.ref
    out: list[LintWarning] = []
    label = f"the {ref.kind} {ref.path or 'root'}"
    if content.readme is None:
        out.append(LintWarning(path=ref.path, code=Code.MISSING_README, severity=Severity.ERROR,
                               message=f"{label} has no README.md."))
    else:
        raw = blobs.get(content.readme.sha, b"")
        text, utf8 = _decode_readme(raw)
        if not text.strip():
            out.append(LintWarning(path=content.readme.path, code=Code.EMPTY_README, message=f"The README of {label} is empty."))
        if not utf8:
            out.append(LintWarning(path=content.readme.path, code=Code.NOT_UTF8,
                                   message="README.md is not valid UTF-8; shown with replacement characters."))
    if ref.path and _bad_name(ref.name):
        out.append(LintWarning(path=ref.path, code=Code.BAD_NAME,
                               message=f"Folder name {ref.name!r} has spaces or non-ASCII letters; prefer [a-z0-9-_]."))
    if ref.kind == layout.ENVIRONMENT:
        for f in content.files:
            if not layout.is_image(f.path):
                out.append(LintWarning(path=f.path, code=Code.STRAY_FILE,
                                       message="Only README.md, pictures and _common/ belong at environment level; "
                                               "move this file into a machine or _common/."))
    seen_dirs: set[str] = set()
    for f in content.files:
        rel_dir = posixpath.dirname(layout.relative_to_ci(f.path, ref.path))
        for part in rel_dir.split("/") if rel_dir else []:
            if part in seen_dirs:
                continue
            seen_dirs.add(part)  # checked once per CI: good names were re-checked for every file
            if _bad_name(part):
                out.append(LintWarning(path=f.path, code=Code.BAD_NAME,
                                       message=f"Folder name {part!r} has spaces or non-ASCII letters."))
    return out


def _lint_artifact(art: Artifact, entry: TreeEntry, data: bytes | None) -> list[LintWarning]:
    out: list[LintWarning] = []
    if entry.type == "commit":
        out.append(LintWarning(path=art.path, code=Code.SUBMODULE, severity=Severity.INFO,
                               message="A Git submodule: its content is not part of this repository."))
        return out
    if art.is_symlink:
        target = art.symlink_target
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(art.path), target))
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            out.append(LintWarning(path=art.path, code=Code.SYMLINK_OUTSIDE, severity=Severity.ERROR,
                                   message=f"Symbolic link to {target!r}, outside the repository (never followed)."))
        else:
            out.append(LintWarning(path=art.path, code=Code.SYMLINK, severity=Severity.INFO,
                                   message=f"Symbolic link to {target!r} (not followed); prefer a copy or _common/."))
        return out
    if art.size > settings.CMDB_LARGE_FILE_BYTES:
        out.append(LintWarning(path=art.path, code=Code.LARGE_FILE,
                               message=f"{art.size:,} bytes: very large files slow every clone; consider storing it elsewhere."))
    if art.is_binary and not art.is_image:
        out.append(LintWarning(path=art.path, code=Code.BINARY_FILE, severity=Severity.INFO,
                               message="Binary file: diffs and reviews cannot show its changes."))
    if has_private_key(data) and b"ENCRYPTED" not in (data or b"")[:200]:
        out.append(LintWarning(path=art.path, code=Code.PLAINTEXT_SECRET, severity=Severity.ERROR,
                               message="An unencrypted private key is committed in plain text; encrypt it "
                                       "(e.g. sops, git-crypt) or keep it out of the repository."))
    return out


def _recompute_duplicates(shas: set[str] | None) -> None:
    """Warn on every artifact whose content also stands in another CI outside ``_common/``."""
    qs = Artifact.objects.filter(size__gte=DUPLICATE_MIN_BYTES, is_symlink=False).exclude(path__contains="_common/")
    stale = LintWarning.objects.filter(code=Code.DUPLICATE)
    if shas is not None:
        qs = qs.filter(blob_sha__in=shas)
        stale = stale.filter(blob_sha__in=shas)
    stale.delete()
    dup_shas = [
        row["blob_sha"]
        for row in qs.values("blob_sha").annotate(cis=Count("ci", distinct=True)).filter(cis__gt=1)
    ]
    if not dup_shas:
        _refresh_warning_counts(shas is None)
        return
    groups: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    for start in range(0, len(dup_shas), 500):
        rows = qs.filter(blob_sha__in=dup_shas[start : start + 500]).values_list("blob_sha", "path", "ci_id", "ci__path")
        for sha, path, ci_id, ci_path in rows:
            groups[sha].append((path, ci_id, ci_path))
    warnings = []
    for sha, members in groups.items():
        ci_paths = sorted({m[2] for m in members})
        common = _common_for(ci_paths)
        for path, ci_id, _ in members:
            # Only the first 6 are used: stop there (the full list made this quadratic in the group size).
            others: list[str] = []
            for p in ci_paths:
                if not path.startswith(p + "/"):
                    others.append(p)
                    if len(others) > 5:
                        break
            warnings.append(LintWarning(
                ci_id=ci_id, path=path, code=Code.DUPLICATE, blob_sha=sha,
                message=f"Same content in {len(ci_paths)} CIs ({', '.join(others[:5])}{'…' if len(others) > 5 else ''}); "
                        f"consider moving it to {common}.",
            ))
    LintWarning.objects.bulk_create(warnings, batch_size=2000)
    _refresh_warning_counts(shas is None)


def _common_for(ci_paths: list[str]) -> str:
    """The ``_common/`` folder shared by all of ``ci_paths``: one level above their common parent."""
    parents = [p.split("/")[:-1] for p in ci_paths]
    prefix: list[str] = []
    for parts in zip(*parents, strict=False):
        if len(set(parts)) != 1:
            break
        prefix.append(parts[0])
    return "/".join([*prefix, layout.COMMON]) + "/"


def _refresh_warning_counts(full: bool) -> None:
    counts = dict(LintWarning.objects.values("ci_id").annotate(n=Count("id")).values_list("ci_id", "n"))
    # One plain UPDATE per distinct new count (a handful) instead of bulk_update's CASE WHEN per row,
    # and tuples instead of model instances: seconds -> a fraction of a second on 26,000 CIs.
    changed: dict[int, list[int]] = defaultdict(list)
    for pk, current in ConfigItem.objects.order_by().values_list("id", "warning_count"):
        n = counts.get(pk, 0)
        if current != n:
            changed[n].append(pk)
    for n, ids in changed.items():
        for start in range(0, len(ids), 500):
            ConfigItem.objects.filter(pk__in=ids[start : start + 500]).update(warning_count=n)


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
            children=list(
                ConfigItem.objects.filter(parent=item).only("path", "name", "kind", "artifact_count", "warning_count")
            ),
            item=item,
        )
    repo = get_repo()
    recursive = ref.kind in (layout.APPLICATION, layout.COMMON_KIND)
    entries = repo.ls_tree(sha, path, recursive=recursive) if path else repo.ls_tree(sha, recursive=False)
    if not entries:
        return None
    patterns = _secret_patterns(repo, sha)
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
    text = _decode_readme(repo.read_blob(readme_entry.sha))[0] if readme_entry else ""
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
    patterns = _secret_patterns(repo, sha)
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
