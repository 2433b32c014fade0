"""What the repository declares each machine should hold, assembled from its tree and manifests.

Pure logic over :class:`cmdb.gitrepo.ConfigRepo` (no Django, no GitPython); the manifest schema is
:mod:`fleet.manifest`. Dry runs, deploys, audits and the indexer's lint all read declarations here,
and :func:`declared_bytes` is the one reader of the declared contents.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cmdb.gitrepo import ConfigRepo, TreeEntry
from cmdb.layout import COMMON
from cmdb.secrets import SECRETS_FILE, SecretPatterns, name_is_secret
from fleet.manifest import (
    FILES_DIR,
    MANIFEST,
    MANUAL,
    DeclaredFile,
    FileSpec,
    MachineDeclaration,
    ManifestError,
    check_target,
    git_mode,
    parse_app_manifest,
    parse_machine_manifest,
)

_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


# --- scanning the tree -------------------------------------------------------------------------------
@dataclass(slots=True)
class _AppScan:
    path: str
    manifest: TreeEntry | None = None
    files: list[TreeEntry] = field(default_factory=list)


@dataclass(slots=True)
class _MachineScan:
    path: str
    manifest: TreeEntry | None = None
    apps: dict[str, _AppScan] = field(default_factory=dict)


def is_machine_dir(env: str, machine: str) -> bool:
    """Whether ``env/machine`` is a machine directory (not tooling, not a ``_common`` folder)."""
    return not (env.startswith(".") or machine.startswith(".") or COMMON in (env, machine))


def _scan(entries: Iterable[TreeEntry], wanted: set[str] | None) -> dict[str, _MachineScan]:
    machines: dict[str, _MachineScan] = {}
    for entry in entries:
        parts = entry.path.split("/")
        if len(parts) < 3 or not is_machine_dir(parts[0], parts[1]):
            continue
        machine_path = f"{parts[0]}/{parts[1]}"
        if wanted is not None and machine_path not in wanted:
            continue
        scan = machines.get(machine_path)
        if scan is None:
            scan = machines[machine_path] = _MachineScan(machine_path)
        if len(parts) == 3:
            if parts[2] == MANIFEST and entry.type == "blob":
                scan.manifest = entry
            continue
        app = parts[2]
        if app.startswith(".") or app == COMMON:
            continue
        app_scan = scan.apps.get(app)
        if app_scan is None:
            app_scan = scan.apps[app] = _AppScan(f"{machine_path}/{app}")
        if len(parts) == 4 and parts[3] == MANIFEST and entry.type == "blob":
            app_scan.manifest = entry
        elif len(parts) > 4 and parts[3] == FILES_DIR:
            app_scan.files.append(entry)
    return machines


# --- the declaration ---------------------------------------------------------------------------------
def _commit(repo: ConfigRepo, sha: str) -> str:
    return sha if _SHA_RE.match(sha) else repo.resolve(sha)


def declared_configuration(
    repo: ConfigRepo,
    sha: str,
    *,
    machines: Iterable[str] | None = None,
    local_root_base: Path | None = None,
    secret_patterns: SecretPatterns | None = None,
    entries: list[TreeEntry] | None = None,
) -> dict[str, MachineDeclaration]:
    """What the repository at ``sha`` declares, per machine path (``"production/web1"``), sorted.

    One ``ls_tree`` (the whole repository, or the one machine asked for) and one ``read_blobs`` for
    every manifest (and ``.cmdb-secrets`` unless ``secret_patterns`` is given). Machines asked for
    that do not exist at ``sha`` are absent from the result. A relative local ``root`` is resolved
    against ``local_root_base``; an absolute one must lie under it. ``entries`` is the whole tree at
    ``sha`` when the caller has already listed it (the indexer), saving the ``ls_tree``.
    """
    commit = _commit(repo, sha)
    wanted = None if machines is None else {m.strip("/") for m in machines}
    if wanted is not None and not wanted:
        return {}
    partial = entries is None and wanted is not None
    if entries is None and wanted is not None:
        # Only the machines asked for, and the _common folders their manifests' sources usually
        # name (anything else is looked up on demand): a batch of 50 machines of a 100,000-file
        # repository lists a few hundred entries instead of all of them.
        commons = {COMMON} | {f"{m.split('/', 1)[0]}/{COMMON}" for m in wanted}
        entries = repo.ls_tree(commit, paths=sorted(wanted | commons))
    elif entries is None:
        entries = repo.ls_tree(commit)
    index: dict[str, TreeEntry | None] = {entry.path: entry for entry in entries}
    scans = _scan(entries, wanted)

    wanted_blobs: list[str] = []
    secrets_entry: TreeEntry | None = None
    if secret_patterns is None:
        secrets_entry = repo.entry(commit, SECRETS_FILE) if partial else index.get(SECRETS_FILE)
        if secrets_entry is not None and secrets_entry.type == "blob":
            wanted_blobs.append(secrets_entry.sha)
    for scan in scans.values():
        if scan.manifest is not None:
            wanted_blobs.append(scan.manifest.sha)
        wanted_blobs.extend(app.manifest.sha for app in scan.apps.values() if app.manifest is not None)
    blobs = repo.read_blobs(wanted_blobs)
    if secret_patterns is None:
        raw_patterns = blobs.get(secrets_entry.sha, b"") if secrets_entry is not None else b""
        secret_patterns = SecretPatterns(raw_patterns.decode("utf-8", errors="replace"))

    def lookup(path: str) -> TreeEntry | None:
        if path in index:
            return index[path]
        if partial:  # a source outside the machines listed
            found = repo.entry(commit, path)
            index[path] = found
            return found
        return None

    result: dict[str, MachineDeclaration] = {}
    for machine_path in sorted(scans):
        scan = scans[machine_path]
        decl = MachineDeclaration(machine_path)
        if scan.manifest is not None:
            access = parse_machine_manifest(scan.manifest.path, blobs.get(scan.manifest.sha, b""),
                                             local_root_base, decl.errors)
            decl.access = access or MANUAL
        claimed: dict[str, str] = {}  # target -> app path
        files: dict[str, DeclaredFile] = {}
        for app_name in sorted(scan.apps):
            _declare_app(scan.apps[app_name], blobs, lookup, secret_patterns, claimed, files, decl)
        decl.files = dict(sorted(files.items()))
        result[machine_path] = decl
    return result


def _declare_app(
    app: _AppScan,
    blobs: Mapping[str, bytes],
    lookup: Callable[[str], TreeEntry | None],
    patterns: SecretPatterns,
    claimed: dict[str, str],
    files: dict[str, DeclaredFile],
    decl: MachineDeclaration,
) -> None:
    errors = decl.errors
    files_prefix = f"{app.path}/{FILES_DIR}"
    tree: dict[str, TreeEntry] = {}
    for entry in app.files:
        target = entry.path[len(files_prefix):]
        if entry.type != "blob":
            errors.append(ManifestError(entry.path, None, "a submodule cannot be declared as a file"))
            continue
        tree[target] = entry
    specs: list[FileSpec] = []
    manifest_path = f"{app.path}/{MANIFEST}"
    if app.manifest is not None:
        specs, reload = parse_app_manifest(manifest_path, app.path, blobs.get(app.manifest.sha, b""), errors)
        if reload:
            decl.reload[app.path] = reload
    overrides: dict[str, FileSpec] = {}
    for spec in specs:
        if spec.source is not None:
            if spec.path in tree:
                errors.append(ManifestError(manifest_path, spec.line,
                                            f"{spec.path} has both a source and {tree[spec.path].path}"))
                continue
            found = lookup(spec.source)
            if found is None:
                errors.append(ManifestError(manifest_path, spec.line, f"source {spec.source} is not a file in the repository"))
                continue
            if found.type != "blob":
                errors.append(ManifestError(manifest_path, spec.line, f"source {spec.source} is not a file"))
                continue
            if found.is_symlink:
                errors.append(ManifestError(manifest_path, spec.line,
                                            f"source {spec.source} is a symlink (symlinks are never followed)"))
                continue
            tree[spec.path] = found
        elif spec.path not in tree:
            errors.append(ManifestError(manifest_path, spec.line,
                                        f"{spec.path} has no {FILES_DIR}{spec.path} and no source"))
            continue
        overrides[spec.path] = spec
    for target in sorted(tree):
        entry = tree[target]
        override = overrides.get(target)
        origin_path, origin_line = (manifest_path, override.line) if override is not None and override.source else (entry.path, None)
        problem = check_target(target)
        if problem:
            errors.append(ManifestError(origin_path, origin_line, problem))
            continue
        if target in claimed:
            errors.append(ManifestError(origin_path, origin_line, f"{target} is also declared by {claimed[target]}"))
            continue
        mode, kind = git_mode(entry)
        if override is not None and override.mode is not None and kind == "file":
            mode = override.mode
        secret = (
            (override is not None and override.secret)
            or name_is_secret(entry.path)
            or name_is_secret(target)
            or patterns.match(entry.path)
        )
        claimed[target] = app.path
        files[target] = DeclaredFile(
            target=target,
            source_path=entry.path,
            blob_sha=entry.sha,
            size=entry.size or 0,
            mode=mode,
            owner=override.owner if override is not None else None,
            group=override.group if override is not None else None,
            secret=bool(secret),
            app_path=app.path,
            kind=kind,
        )


def manifest_errors(
    repo: ConfigRepo,
    sha: str,
    *,
    local_root_base: Path | None = None,
    machines: Iterable[str] | None = None,
    entries: list[TreeEntry] | None = None,
) -> list[ManifestError]:
    """Every manifest problem in the repository at ``sha`` (for lint), sorted by file and line."""
    found: dict[ManifestError, None] = {}
    decls = declared_configuration(repo, sha, local_root_base=local_root_base, machines=machines, entries=entries)
    for decl in decls.values():
        for error in decl.errors:
            found[error] = None
    return sorted(found, key=lambda e: (e.path, e.line or 0, e.message))


def declared_bytes(repo: ConfigRepo, declarations: Iterable[MachineDeclaration]) -> dict[str, dict[str, bytes]]:
    """The declared content of every file of ``declarations``, by machine path and target path.

    Every blob through ONE ``git cat-file --batch`` (a process per machine cost more than the
    comparison itself); blobs shared between machines (``_common`` sources) are read once.
    """
    decls = list(declarations)
    blobs = repo.read_blobs({f.blob_sha for d in decls for f in d.files.values()})
    return {d.machine_path: by_target(d, blobs) for d in decls}


def by_target(declaration: MachineDeclaration, blobs: Mapping[str, bytes]) -> dict[str, bytes]:
    """The declared content of each of the machine's files, by target path, from blobs read already."""
    return {t: blobs[f.blob_sha] for t, f in declaration.files.items() if f.blob_sha in blobs}
