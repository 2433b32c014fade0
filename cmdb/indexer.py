"""Indexing a commit of the configuration repository into the database (the CM identification index).

``index_commit`` runs inside the sync's transaction. A full index lists the tree once, reads README
and symlink blobs, and sniffs every other blob (binary? private key?) in a background thread while
the main thread parses history and writes rows, so Git's decompression overlaps the database work.
Rows are written as plain tuples (``cmdb.bulk``): building model instances for 100,000 artifacts costs
more than the inserts themselves.
"""

from __future__ import annotations

import posixpath
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable

from django.conf import settings
from django.core.management.color import no_style
from django.db import connection
from django.db.models import Count, Max, Q, QuerySet

from cmdb import layout, search
from cmdb.bulk import delete_rows, insert_rows
from cmdb.gitrepo import CommitInfo, ConfigRepo, GitError, TreeEntry, UnknownRevision
from cmdb.lint import CIContent, Facts, Warn, decode_readme, lint_artifact, lint_ci
from cmdb.models import Artifact, Commit, ConfigItem, LintWarning, SecretPath, SyncRun
from cmdb.secrets import SECRETS_FILE, SecretPatterns, has_private_key, mask_text, name_is_secret
from fleet.declared import manifest_errors

SNIFF_LIMIT = 1024 * 1024  # blobs above this are not read during indexing (binary by extension)
INCREMENTAL_MAX_PATHS = 5000  # beyond this many changed paths a full index is as fast
DUPLICATE_MIN_BYTES = 64  # tiny files (empty, "\n") are the same everywhere by nature
TEXT_EXTENSIONS = {".conf", ".cfg", ".ini", ".txt", ".md", ".yml", ".yaml", ".json", ".sh", ".py", ".xml", ".csv", ".sql"}
Code = LintWarning.Code
Severity = LintWarning.Severity

ARTIFACT_FIELDS = ["ci", "path", "name", "size", "blob_sha", "mode", "is_binary", "is_secret", "is_image",
                   "is_symlink", "symlink_target"]
CI_UPDATE_FIELDS = ["name", "kind", "depth", "parent_id", "has_readme", "readme_sha", "readme_markdown", "readme_html",
                    "last_commit_id", "artifact_count"]
WARNING_FIELDS = ["ci", "path", "code", "severity", "message", "blob_sha"]
CI_FIELDS = ["id", "path", "name", "kind", "depth", "parent", "has_readme", "readme_sha", "readme_markdown",
             "readme_html", "last_commit", "artifact_count", "warning_count"]





def index_commit(repo: ConfigRepo, sha: str, *, previous: str | None) -> tuple[str, int]:
    """Bring the index to ``sha``; must run inside a transaction. Returns (mode, paths changed)."""
    if previous == sha and ConfigItem.objects.exists():
        ensure_commit_rows(repo, [sha])
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


# The .cmdb-secrets of a commit never changes: read once per process and commit (two ``git`` processes
# each), not on every page that shows a file or a diff.
_secrets_texts: dict[tuple[str, str], str] = {}


def _secrets_text(repo: ConfigRepo, sha: str) -> str:
    key = (str(repo.path), sha)
    if key in _secrets_texts:
        return _secrets_texts[key]
    entry = repo.entry(sha, SECRETS_FILE)
    text = "" if entry is None or entry.type != "blob" else repo.read_blob(entry.sha).decode("utf-8", errors="replace")
    if len(sha) == 40:  # a full sha names one commit for ever; a branch name does not
        if len(_secrets_texts) >= 256:
            _secrets_texts.clear()
        _secrets_texts[key] = text
    return text


def secret_patterns(repo: ConfigRepo, *shas: str) -> SecretPatterns:
    """The secret rule for reading the repository at ``shas`` (both sides of a diff): the one every
    reader uses (pages, raw, diffs, search, dry runs, audits, the API).

    Whether a path is secret must not depend on the revision a caller picks: an old commit made before
    a glob was added, or a branch that deletes the glob, would otherwise show the file in clear. So a
    path is secret when the ``.cmdb-secrets`` of any of ``shas`` says so, or the one on the portal's
    branch does, or the path was ever indexed as a secret (``SecretPath``, kept for ever). One
    database query, whatever the number of revisions.
    """
    try:
        main = repo.origin_head(settings.CMDB_BRANCH)
    except GitError:
        main = ""
    texts = [_secrets_text(repo, sha) for sha in dict.fromkeys([*shas, main]) if sha]
    return SecretPatterns.union(texts, paths=frozenset(SecretPath.objects.values_list("path", flat=True)))


def remember_secret_paths(paths: Iterable[str]) -> None:
    """Keep every path ever indexed as a secret: it stays secret at every revision from now on."""
    SecretPath.objects.bulk_create([SecretPath(path=p) for p in paths], ignore_conflicts=True, batch_size=500)


# ----------------------------------------------------------------------------------------------------
# Full and incremental
# ----------------------------------------------------------------------------------------------------


def _index_full(repo: ConfigRepo, sha: str) -> int:
    entries = repo.ls_tree(sha)
    wait_for_facts = _start_sniffing(repo, entries)  # overlaps everything up to writing artifacts
    contents = _group_by_ci(entries)
    texts = repo.read_blobs(_text_shas(contents.values()))
    last = _last_commits(repo.log_with_paths(sha), set(contents))
    ensure_commit_rows(repo, [sha], extra=last.values())
    patterns = secret_patterns(repo, sha)

    # The rows already there are compared with the new ones and only the differences written: after a
    # force-push most of the index is unchanged, and on PostgreSQL deleting and re-inserting every row
    # costs more than the rest of the index (index entries, unique checks against the deleted rows,
    # and a foreign-key check per row at commit).
    existing = {ci.path: ci for ci in ConfigItem.objects.all()}
    with connection.cursor() as cur:
        # Raw delete: nothing else refers to these rows, and Django's cascade collector would load them all.
        cur.execute(f"DELETE FROM {connection.ops.quote_name(LintWarning._meta.db_table)}")  # noqa: S608
    _delete_cis([existing.pop(p).pk for p in list(existing) if p not in contents])
    _write(sorted(contents.values(), key=lambda c: c.ref.depth), texts, wait_for_facts, last, patterns,
           existing=existing, old_artifacts=Artifact.objects.all())
    search.delete_orphans()
    _recompute_duplicates(None, refresh=False)
    _lint_manifests(repo, sha, None, entries=entries)
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
            # A sub-folder here is a child CI: a marker entry makes it known to exist.
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
    wait_for_facts = _start_sniffing(repo, [f for c in contents.values() for f in c.files])
    texts = repo.read_blobs(_text_shas(contents.values()))
    last = _last_commits(repo.log_with_paths(sha, since=previous), set(contents))
    ensure_commit_rows(repo, [sha], extra=last.values())
    patterns = secret_patterns(repo, sha)

    ids = [existing[p].pk for p in affected if p in existing]
    LintWarning.objects.filter(ci_id__in=ids).exclude(code__in=(Code.DUPLICATE, Code.MANIFEST)).delete()
    _delete_cis([existing.pop(path).pk for path in gone])
    _write(sorted(contents.values(), key=lambda c: c.ref.depth), texts, wait_for_facts, last, patterns,
           existing=existing, old_artifacts=Artifact.objects.filter(ci_id__in=ids))
    new_shas = set(Artifact.objects.filter(ci__path__in=list(contents)).values_list("blob_sha", flat=True))
    _recompute_duplicates(old_shas | new_shas, written=set(ConfigItem.objects.filter(path__in=list(contents))
                                                             .values_list("pk", flat=True)))
    _lint_manifests(repo, sha, _machines_touched(paths))


def _machines_touched(paths: list[str]) -> set[str] | None:
    """The machines whose declaration a change to ``paths`` may alter; None when it may be any machine.

    A manifest's ``source`` may point into a ``_common/`` folder above the machine (or anywhere in the
    repository), so a change outside machine directories re-checks every machine.
    """
    machines: set[str] = set()
    for path in paths:
        parts = path.split("/")
        if len(parts) < 3:
            if parts[-1] == "README.md" or layout.is_image(path):
                continue  # documentation at root or environment level: no manifest can use it
            return None
        if layout.COMMON in parts[:2]:
            return None
        machines.add(f"{parts[0]}/{parts[1]}")
    return machines


def _group_by_ci(entries: Iterable[TreeEntry]) -> dict[str, CIContent]:
    contents: dict[str, CIContent] = {"": CIContent(layout.CIRef("", layout.ROOT))}
    for entry in entries:
        if entry.type == "tree":
            continue
        path = entry.path
        slash = path.rfind("/")
        folder = path[:slash] if slash >= 0 else ""
        owner = layout.owner_of_dir(folder)
        if owner is None:
            continue
        content = contents.get(owner.path)
        if content is None:
            # Every folder on the way down to the owner is a CI too.
            for dir_path in layout.ci_dirs_of(entry.path):
                if dir_path not in contents:
                    ref = layout.ci_for_dir(dir_path)
                    if ref is not None:
                        contents[dir_path] = CIContent(ref)
            content = contents[owner.path]
        if entry.type == "blob" and entry.mode != "120000" and folder == owner.path and path[slash + 1 :] == layout.README:
            content.readme = entry
        else:
            content.files.append(entry)
    return contents


# ----------------------------------------------------------------------------------------------------
# Reading blobs
# ----------------------------------------------------------------------------------------------------


def _text_shas(contents: Iterable[CIContent]) -> list[str]:
    """Blobs whose content the index keeps: READMEs and symlink targets."""
    shas = []
    for content in contents:
        if content.readme:
            shas.append(content.readme.sha)
        shas.extend(f.sha for f in content.files if f.is_symlink)
    return shas


def _sniff(data: bytes) -> Facts:
    key = b"PRIVATE KEY" in data and has_private_key(data)
    encrypted = key and (b"ENCRYPTED" in data[:400])
    return Facts(b"\0" in data[:8000], key and not encrypted, encrypted)


def _start_sniffing(repo: ConfigRepo, entries: Iterable[TreeEntry]) -> Callable[[], dict[str, Facts]]:
    """Read the blobs of ``entries`` in a thread; the returned function waits for (and returns) the facts."""
    shas = [f.sha for f in entries if f.type == "blob" and f.mode != "120000" and (f.size or 0) <= SNIFF_LIMIT]
    facts: dict[str, Facts] = {}
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for sha, data in repo.iter_blobs(shas):
                facts[sha] = _sniff(data)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="cmdb-sniff", daemon=True)
    thread.start()

    def wait() -> dict[str, Facts]:
        thread.join()
        if errors:
            raise errors[0]
        return facts

    return wait


# ----------------------------------------------------------------------------------------------------
# History
# ----------------------------------------------------------------------------------------------------


def _last_commits(history: Iterable[tuple[CommitInfo, list[str]]], wanted: set[str]) -> dict[str, CommitInfo]:
    """For each CI directory in ``wanted``, the newest commit that changed anything below it."""
    found: dict[str, CommitInfo] = {}
    for info, paths in history:
        for folder in {posixpath.dirname(p) for p in paths}:  # far fewer folders than files
            for ci_path in layout.ci_dirs_of(folder + "/x"):
                if ci_path in wanted and ci_path not in found:
                    found[ci_path] = info
        if len(found) == len(wanted):
            break
    return found


def ensure_commit_rows(repo: ConfigRepo, shas: list[str], extra: Iterable[CommitInfo] = ()) -> dict[str, Commit]:
    """Commit rows for ``shas`` and ``extra``, created where missing."""
    infos = {i.sha: i for i in extra}
    for sha in shas:
        if sha not in infos:
            infos[sha] = repo.commit(sha)
    have = set(Commit.objects.filter(sha__in=list(infos)).values_list("sha", flat=True))
    Commit.objects.bulk_create(
        [
            Commit(sha=i.sha, author_name=i.author_name[:200], author_email=i.author_email[:200],
                   committed_at=i.committed_at, summary=i.summary[:500])
            for sha, i in infos.items()
            if sha not in have
        ]
    )
    return {c.sha: c for c in Commit.objects.filter(sha__in=list(infos))}


# ----------------------------------------------------------------------------------------------------
# Writing rows
# ----------------------------------------------------------------------------------------------------


def _write(
    contents: list[CIContent],
    texts: dict[str, bytes],
    wait_for_facts: Callable[[], dict[str, Facts]],
    last: dict[str, CommitInfo],
    patterns: SecretPatterns,
    *,
    existing: dict[str, ConfigItem],
    old_artifacts: QuerySet[Artifact],
) -> None:
    """Create or update CI rows (parents first), their artifacts, warnings and search documents.

    Rows equal to those in ``existing`` and ``old_artifacts`` (the artifacts of the CIs rewritten) are
    left as they are; the others are replaced.
    """
    commit_ids = dict(Commit.objects.filter(sha__in=[c.sha for c in last.values()]).values_list("sha", "pk"))
    ids = {p: ci.pk for p, ci in existing.items()}
    parents = {c.ref.parent_path for c in contents if c.ref.parent_path is not None} - set(ids)
    ids.update(ConfigItem.objects.filter(path__in=parents).values_list("path", "pk"))
    next_id = (ConfigItem.objects.aggregate(m=Max("id"))["m"] or 0) + 1

    bodies = search.document_bodies([ci.pk for ci in existing.values()])
    new_rows: list[tuple] = []
    updated: list[ConfigItem] = []
    docs: list[tuple[int, str, str, str]] = []
    ci_warnings: dict[int, list[Warn]] = {}
    for content in contents:
        ref = content.ref
        pk = ids.get(ref.path)
        if pk is None:
            pk = ids[ref.path] = next_id
            next_id += 1
        parent_id = ids.get(ref.parent_path) if ref.parent_path is not None else None
        warnings = lint_ci(content, texts)
        ci_warnings[pk] = warnings
        commit = last.get(ref.path)
        commit_id = commit_ids.get(commit.sha) if commit else None
        row = existing.get(ref.path)
        if content.readme:
            markdown = decode_readme(texts.get(content.readme.sha, b""))[0]
            if row is not None and row.readme_sha == content.readme.sha and row.readme_markdown == markdown:
                readme = (True, row.readme_sha, row.readme_markdown, row.readme_html)
            else:  # rendered on first view
                readme = (True, content.readme.sha, markdown, "")
        else:
            readme = (False, "", "", "")
        if row is None:
            new_rows.append((pk, ref.path, ref.name, ref.kind, ref.depth, parent_id, *readme,
                             commit_id, len(content.files), 0))
        else:
            values = (ref.name, ref.kind, ref.depth, parent_id, *readme, commit_id or row.last_commit_id,
                      len(content.files))
            if values != tuple(getattr(row, f) for f in CI_UPDATE_FIELDS):
                for field, value in zip(CI_UPDATE_FIELDS, values, strict=True):
                    setattr(row, field, value)
                updated.append(row)
        # A key pasted into a README is masked on the page; it must not be findable by search either.
        body = mask_text(readme[2])
        if bodies.get(pk) != body:
            docs.append((pk, ref.name, ref.path, body))

    insert_rows(ConfigItem, CI_FIELDS, new_rows)
    if new_rows:
        with connection.cursor() as cur:
            for sql in connection.ops.sequence_reset_sql(no_style(), [ConfigItem]):
                cur.execute(sql)
    ConfigItem.objects.bulk_update(updated, CI_UPDATE_FIELDS, batch_size=500)

    facts = wait_for_facts()
    artifacts: list[tuple] = []
    warning_rows: list[tuple] = []
    large = settings.CMDB_LARGE_FILE_BYTES
    for content in contents:
        pk = ids[content.ref.path]
        warnings = ci_warnings[pk]
        for entry in content.files:
            fact = facts.get(entry.sha)
            target = texts[entry.sha].decode("utf-8", "replace")[:1000] if entry.is_symlink and entry.sha in texts else ""
            if entry.type != "blob" or entry.is_symlink:
                binary = False
            elif fact is not None:
                binary = fact.is_binary
            else:
                binary = posixpath.splitext(entry.path)[1].lower() not in TEXT_EXTENSIONS
            secret = name_is_secret(entry.path) or patterns.match(entry.path) or bool(
                fact and (fact.private_key or fact.encrypted_key)
            )
            image = layout.is_image(entry.path)
            artifacts.append((pk, entry.path, posixpath.basename(entry.path), entry.size or 0, entry.sha,
                              entry.mode, bool(binary), bool(secret), bool(image), bool(entry.is_symlink), target))
            warnings.extend(lint_artifact(entry, target, binary, image, fact, large))
        warning_rows.extend((pk, *w, "") for w in warnings)
    old: dict[str, tuple] = {row[2]: row for row in old_artifacts.values_list("id", *ARTIFACT_FIELDS).order_by()}
    fresh: list[tuple] = []
    for art in artifacts:
        before = old.get(art[1])
        if before is not None and before[1:] == art:
            del old[art[1]]
        else:
            fresh.append(art)
    delete_rows(Artifact, [before[0] for before in old.values()])  # changed and gone, before their paths come back
    insert_rows(Artifact, ARTIFACT_FIELDS, fresh)
    insert_rows(LintWarning, WARNING_FIELDS, warning_rows)
    remember_secret_paths(row[1] for row in artifacts if row[7])
    search.delete_documents([d[0] for d in docs])  # a new CI's id may be that of a leftover row too
    search.add_documents(docs)


def _delete_cis(ids: list[int]) -> None:
    """Remove these CIs with their artifacts, warnings and search documents (children are in ``ids`` too)."""
    for model, column in ((LintWarning, "ci_id"), (Artifact, "ci_id"), (ConfigItem, "id")):
        delete_rows(model, ids, column=column)
    search.delete_documents(ids)


# ----------------------------------------------------------------------------------------------------
# Lint
# ----------------------------------------------------------------------------------------------------


def _lint_manifests(repo: ConfigRepo, sha: str, machines: set[str] | None, *,
                    entries: list[TreeEntry] | None = None) -> None:
    """Replace the manifest warnings of ``machines`` (every machine when None) with those at ``sha``.

    Each problem is attached to the CI holding the file it names (the application or machine of a
    ``manifest.toml``, the application of a ``files/`` entry), with the line in the message.
    """
    if machines is not None and not machines:
        return
    stale = LintWarning.objects.filter(code=Code.MANIFEST)
    if machines is not None:
        scope = Q()
        for machine in machines:
            scope |= Q(path__startswith=machine + "/")
        stale = stale.filter(scope)
    touched = set(stale.values_list("ci_id", flat=True))
    stale.delete()
    errors = manifest_errors(repo, sha, local_root_base=settings.CMDB_LOCAL_ROOT_BASE, machines=machines,
                             entries=entries)
    owners = {e: ref.path for e in errors if (ref := layout.owning_ci(e.path)) is not None}
    ci_ids = dict(ConfigItem.objects.filter(path__in=set(owners.values())).values_list("path", "pk"))
    rows = []
    for error, ci_path in owners.items():
        pk = ci_ids.get(ci_path)
        if pk is None:
            continue
        where = f"line {error.line}: " if error.line else ""
        rows.append((pk, error.path, Code.MANIFEST, Severity.ERROR, f"{where}{error.message}", ""))
        touched.add(pk)
    insert_rows(LintWarning, WARNING_FIELDS, rows)
    _refresh_warning_counts(None if machines is None else touched)


def _recompute_duplicates(shas: set[str] | None, *, written: set[int] | None = None, refresh: bool = True) -> None:
    """Warn on every artifact whose content also stands in another CI outside ``_common/``.

    ``shas`` limits the work to those contents (incremental sync); ``written`` are the CIs whose rows
    the sync rewrote: their warning counts are refreshed with those of every CI holding such content.
    """
    qs = Artifact.objects.filter(size__gte=DUPLICATE_MIN_BYTES, is_symlink=False).exclude(path__contains="_common/")
    stale = LintWarning.objects.filter(code=Code.DUPLICATE)
    if shas is not None:
        qs = qs.filter(blob_sha__in=shas)
        stale = stale.filter(blob_sha__in=shas)
    touched = set(written or ())
    if shas is not None:
        touched.update(Artifact.objects.filter(blob_sha__in=shas).values_list("ci_id", flat=True))
    stale.delete()
    dup_shas = [
        row["blob_sha"]
        for row in qs.values("blob_sha").annotate(cis=Count("ci", distinct=True)).filter(cis__gt=1).order_by()
    ]
    groups: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    for start in range(0, len(dup_shas), 500):
        rows = qs.filter(blob_sha__in=dup_shas[start : start + 500]).values_list("blob_sha", "path", "ci_id", "ci__path")
        for sha, path, ci_id, ci_path in rows:
            groups[sha].append((path, ci_id, ci_path))
    rows_out: list[tuple] = []
    for sha, members in groups.items():
        ci_paths = sorted({m[2] for m in members})
        common = _common_for(ci_paths)
        for path, ci_id, _ in members:
            # Only the first five are named: stop there (the full list made this quadratic in the group size).
            others: list[str] = []
            for p in ci_paths:
                if not path.startswith(p + "/"):
                    others.append(p)
                    if len(others) > 5:
                        break
            message = (f"Same content in {len(ci_paths)} CIs ({', '.join(others[:5])}{'…' if len(others) > 5 else ''}); "
                       f"consider moving it to {common}.")
            rows_out.append((ci_id, path, Code.DUPLICATE, Severity.WARNING, message, sha))
    insert_rows(LintWarning, WARNING_FIELDS, rows_out)
    if refresh:
        _refresh_warning_counts(None if shas is None else touched)


def _common_for(ci_paths: list[str]) -> str:
    """The ``_common/`` folder shared by all of ``ci_paths``: one level above their common parent."""
    parents = [p.split("/")[:-1] for p in ci_paths]
    prefix: list[str] = []
    for parts in zip(*parents, strict=False):
        if len(set(parts)) != 1:
            break
        prefix.append(parts[0])
    return "/".join([*prefix, layout.COMMON]) + "/"


def _refresh_warning_counts(ci_ids: set[int] | None) -> None:
    """Store each CI's number of warnings (of every CI, or of ``ci_ids``)."""
    warnings = LintWarning.objects.all()
    items = ConfigItem.objects.all()
    if ci_ids is not None:
        warnings, items = warnings.filter(ci_id__in=ci_ids), items.filter(pk__in=ci_ids)
    counts = dict(warnings.values("ci_id").annotate(n=Count("id")).order_by().values_list("ci_id", "n"))
    # One plain UPDATE per distinct new count (a handful) instead of bulk_update's CASE WHEN per row.
    changed: dict[int, list[int]] = defaultdict(list)
    for pk, current in items.order_by().values_list("id", "warning_count"):
        n = counts.get(pk, 0)
        if current != n:
            changed[n].append(pk)
    for n, pks in changed.items():
        for start in range(0, len(pks), 500):
            ConfigItem.objects.filter(pk__in=pks[start : start + 500]).update(warning_count=n)


# ----------------------------------------------------------------------------------------------------
# Figures for the home page
# ----------------------------------------------------------------------------------------------------


def compute_stats() -> dict:
    """Counts of the index, computed once per sync (see SyncState.stats)."""
    kinds = dict(ConfigItem.objects.order_by().values_list("kind").annotate(n=Count("id")))
    lint = list(LintWarning.objects.order_by().values("code", "severity").annotate(n=Count("id")).order_by("-n", "code"))
    machines = dict(
        ConfigItem.objects.filter(kind=layout.MACHINE).order_by().values_list("parent__path").annotate(n=Count("id"))
    )
    applications = dict(
        ConfigItem.objects.filter(kind=layout.APPLICATION).order_by()
        .values_list("parent__parent__path").annotate(n=Count("id"))
    )
    return {
        "kinds": kinds,
        "artifacts": Artifact.objects.count(),
        "lint": lint,
        "environments": {env: {"machines": machines.get(env, 0), "applications": applications.get(env, 0)}
                         for env in set(machines) | set(applications)},
    }
