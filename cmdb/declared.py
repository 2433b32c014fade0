"""What the repository declares each machine should hold: files, modes, owners, reload commands, access.

Pure logic over :class:`cmdb.gitrepo.ConfigRepo` (no Django, no GitPython). The convention:

- ``<env>/<machine>/<app>/files/`` mirrors the machine's file system: ``files/etc/nginx/nginx.conf``
  declares ``/etc/nginx/nginx.conf``. The mode comes from Git (0644, or 0755 for executables; a
  symlink is declared as a symlink whose content is its target) unless the manifest says otherwise.
- ``<env>/<machine>/<app>/manifest.toml`` (optional) overrides mode/owner/group of a ``files/``
  entry, or declares a file from ``source`` (relative to the application directory, inside the
  repository), marks files ``secret``, and lists ``[deploy] reload`` commands.
- ``<env>/<machine>/manifest.toml`` (optional) says how the machine is reached:
  ``[machine] transport = "ssh" | "local" | "manual"`` (``manual`` without a manifest).

Every problem is a :class:`ManifestError` (file, line, message) attached to the machine's
declaration: a caller must check :attr:`MachineDeclaration.errors` before using it, and report
them instead of guessing.
"""

from __future__ import annotations

import posixpath
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from cmdb.gitrepo import ConfigRepo, TreeEntry
from cmdb.layout import COMMON
from cmdb.secrets import SECRETS_FILE, SecretPatterns, name_is_secret

__all__ = [
    "MANIFEST",
    "TRANSPORTS",
    "DeclaredFile",
    "MachineAccess",
    "MachineDeclaration",
    "ManifestError",
    "declared_configuration",
    "declared_contents",
    "is_machine_dir",
    "manifest_errors",
]

MANIFEST = "manifest.toml"
FILES_DIR = "files"
TRANSPORTS = ("ssh", "local", "manual")
DEFAULT_SSH_PORT = 22

_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_MODE_RE = re.compile(r"^0?[0-7]{3,4}$")
_NAME_RE = re.compile(r"^[^\s:/\x00-\x1f]{1,64}$")
_TOML_LINE_RE = re.compile(r"\(at line (\d+), column \d+\)")
_HEADER_RE = re.compile(r"^\s*(\[\[?)\s*([^\[\]#]+?)\s*(\]\]?)\s*(?:#.*)?$")
_FILE_KEYS = {"path", "mode", "owner", "group", "source", "secret"}
_MACHINE_KEYS = {"transport", "host", "port", "user", "root"}
_DEPLOY_KEYS = {"reload"}


# --- results -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ManifestError:
    """A problem in a manifest (or a declared file): repository path, 1-based line or None, message."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"


@dataclass(frozen=True, slots=True)
class MachineAccess:
    """How a machine is reached. ``root`` (local only) is absolute, resolved against the caller's base."""

    transport: str  # "ssh", "local" or "manual"
    host: str | None = None
    port: int = DEFAULT_SSH_PORT
    user: str | None = None
    root: Path | None = None


MANUAL = MachineAccess("manual")


@dataclass(frozen=True, slots=True)
class DeclaredFile:
    """One file the repository declares on a machine."""

    target: str  # absolute path on the machine, e.g. "/etc/nginx/nginx.conf"
    source_path: str  # repository path of the content
    blob_sha: str
    size: int
    mode: int  # permission bits, e.g. 0o644
    owner: str | None  # compared only when declared
    group: str | None
    secret: bool
    app_path: str  # e.g. "production/web1/nginx"
    kind: str = "file"  # "file", or "symlink" (the blob holds the link target)


@dataclass(slots=True)
class MachineDeclaration:
    """Everything declared for one machine at one commit."""

    machine_path: str  # e.g. "production/web1"
    access: MachineAccess = MANUAL
    files: dict[str, DeclaredFile] = field(default_factory=dict)  # by target path, sorted
    reload: dict[str, list[str]] = field(default_factory=dict)  # by application path
    errors: list[ManifestError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def environment(self) -> str:
        return self.machine_path.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.machine_path.rsplit("/", 1)[-1]


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


# --- TOML helpers ------------------------------------------------------------------------------------
class _Located:
    """Line numbers of tables and keys in a TOML text (tomllib does not report them after parsing)."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.headers: list[tuple[int, str, bool]] = []  # (0-based line, table name, is array of tables)
        for i, line in enumerate(self.lines):
            match = _HEADER_RE.match(line)
            if match and len(match.group(1)) == len(match.group(3)):
                name = ".".join(p.strip().strip("\"'") for p in match.group(2).split("."))
                self.headers.append((i, name, match.group(1) == "[["))

    def table(self, name: str, index: int = 0) -> tuple[int, int] | None:
        """(first, end) 0-based line span of the ``index``-th ``[name]``/``[[name]]`` table."""
        seen = -1
        for n, (i, header, _array) in enumerate(self.headers):
            if header == name:
                seen += 1
                if seen == index:
                    end = self.headers[n + 1][0] if n + 1 < len(self.headers) else len(self.lines)
                    return i, end
        return None

    def line(self, table: str | None, key: str | None = None, index: int = 0) -> int | None:
        """1-based line of ``key`` in the table (the table's header when the key is not found)."""
        if table is None:
            span: tuple[int, int] | None = (0, self.headers[0][0] if self.headers else len(self.lines))
        else:
            span = self.table(table, index)
        if span is None:
            return self._key_anywhere(table) if table else None
        first, end = span
        if key is not None:
            pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
            for i in range(first, end):
                if pattern.match(self.lines[i]):
                    return i + 1
        return first + 1 if table is not None else None

    def _key_anywhere(self, key: str) -> int | None:
        pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for i, line in enumerate(self.lines):
            if pattern.match(line):
                return i + 1
        return None


def _parse_toml(path: str, raw: bytes, errors: list[ManifestError]) -> tuple[dict[str, Any], _Located] | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        errors.append(ManifestError(path, raw[: exc.start].count(b"\n") + 1, "not UTF-8 text"))
        return None
    try:
        data, located = _loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_LINE_RE.search(message)
        line = int(match.group(1)) if match else None
        errors.append(ManifestError(path, line, f"invalid TOML: {_TOML_LINE_RE.sub('', message).strip()}"))
        return None
    return data, located


@lru_cache(maxsize=2048)
def _loads(text: str) -> tuple[dict[str, Any], _Located]:
    """Parsed TOML and its line index, cached by text: a fleet's manifests repeat (an audit of 5,000
    machines parses a few distinct ones thousands of times). Callers only read the result."""
    return tomllib.loads(text), _Located(text)


def _type_name(value: object) -> str:
    return {
        str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _check_target(target: str) -> str | None:
    """None when ``target`` is a clean absolute path, else the reason."""
    if not target.startswith("/"):
        return f"target path {target!r} is not absolute"
    if "\0" in target or "\\" in target:
        return f"target path {target!r} contains a NUL or backslash"
    parts = target[1:].split("/")
    if target == "/" or any(p in ("", ".", "..") for p in parts):
        return f"target path {target!r} must be a normalised absolute path (no '..', '.', '//' or trailing '/')"
    return None


def _git_mode(entry: TreeEntry) -> tuple[int, str]:
    if entry.is_symlink:
        return 0o777, "symlink"
    return (0o755 if entry.is_executable else 0o644), "file"


# --- application manifests ---------------------------------------------------------------------------
@dataclass(slots=True)
class _FileSpec:
    path: str
    line: int | None
    mode: int | None = None
    owner: str | None = None
    group: str | None = None
    source: str | None = None  # resolved repository path
    secret: bool = False


def _parse_app_manifest(
    path: str, app_path: str, raw: bytes, errors: list[ManifestError]
) -> tuple[list[_FileSpec], list[str] | None]:
    parsed = _parse_toml(path, raw, errors)
    if parsed is None:
        return [], None
    data, loc = parsed
    specs: list[_FileSpec] = []
    reload: list[str] | None = None
    for key in data:
        if key not in ("file", "deploy"):
            hint = f" (machine settings go in {posixpath.dirname(app_path)}/{MANIFEST})" if key == "machine" else ""
            errors.append(ManifestError(path, loc.line(key) or loc.line(None, key), f"unknown table or key {key!r}{hint}"))
    files = data.get("file", [])
    if not isinstance(files, list):
        errors.append(ManifestError(path, loc.line(None, "file") or loc.line("file"),
                                    f"'file' must be an array of tables ([[file]]), not {_type_name(files)}"))
        files = []
    seen: dict[str, int | None] = {}
    for index, item in enumerate(files):
        if not isinstance(item, dict):
            errors.append(ManifestError(path, loc.line(None, "file"), f"[[file]] entry {index + 1} is not a table"))
            continue
        spec = _parse_file_entry(path, app_path, item, index, loc, errors)
        if spec is None:
            continue
        if spec.path in seen:
            errors.append(ManifestError(path, spec.line, f"{spec.path} is declared twice in this manifest"))
            continue
        seen[spec.path] = spec.line
        specs.append(spec)
    deploy = data.get("deploy")
    if deploy is not None:
        if not isinstance(deploy, dict):
            errors.append(ManifestError(path, loc.line(None, "deploy"), f"'deploy' must be a table, not {_type_name(deploy)}"))
        else:
            for key in deploy:
                if key not in _DEPLOY_KEYS:
                    errors.append(ManifestError(path, loc.line("deploy", key), f"unknown key {key!r} in [deploy]"))
            value = deploy.get("reload")
            if value is not None:
                if not isinstance(value, list) or not all(isinstance(c, str) and c.strip() for c in value):
                    errors.append(ManifestError(path, loc.line("deploy", "reload"),
                                                "[deploy] reload must be an array of non-empty strings"))
                else:
                    reload = list(value)
    return specs, reload


def _parse_file_entry(
    path: str, app_path: str, item: dict[str, Any], index: int, loc: _Located, errors: list[ManifestError]
) -> _FileSpec | None:
    def line(key: str | None = None) -> int | None:
        return loc.line("file", key, index)

    ok = True
    for key in item:
        if key not in _FILE_KEYS:
            errors.append(ManifestError(path, line(key), f"unknown key {key!r} in [[file]]"))
            ok = False
    target = item.get("path")
    if not isinstance(target, str):
        what = "is missing" if target is None else f"must be a string, not {_type_name(target)}"
        errors.append(ManifestError(path, line("path"), f"[[file]] 'path' {what}"))
        return None
    problem = _check_target(target)
    if problem:
        errors.append(ManifestError(path, line("path"), problem))
        return None
    spec = _FileSpec(target, line("path"))
    if "mode" in item:
        mode = item["mode"]
        if not isinstance(mode, str) or not _MODE_RE.match(mode):
            shown = repr(mode) if isinstance(mode, str) else _type_name(mode)
            errors.append(ManifestError(path, line("mode"),
                                        f"mode must be an octal string such as \"0640\", not {shown}"))
            ok = False
        else:
            spec.mode = int(mode, 8)
    for key in ("owner", "group"):
        if key in item:
            value = item[key]
            if not isinstance(value, str) or not _NAME_RE.match(value):
                shown = repr(value) if isinstance(value, str) else _type_name(value)
                errors.append(ManifestError(path, line(key), f"{key} must be a user or group name, not {shown}"))
                ok = False
            else:
                setattr(spec, key, value)
    if "secret" in item:
        if not isinstance(item["secret"], bool):
            errors.append(ManifestError(path, line("secret"), f"secret must be true or false, not {_type_name(item['secret'])}"))
            ok = False
        else:
            spec.secret = item["secret"]
    if "source" in item:
        source = item["source"]
        if not isinstance(source, str) or not source:
            errors.append(ManifestError(path, line("source"), "source must be a non-empty string"))
            ok = False
        elif source.startswith("/") or "\\" in source or "\0" in source:
            errors.append(ManifestError(path, line("source"),
                                        f"source {source!r} must be relative to the application directory"))
            ok = False
        else:
            resolved = posixpath.normpath(posixpath.join(app_path, source))
            if resolved == ".." or resolved.startswith("../") or resolved in (".", ""):
                errors.append(ManifestError(path, line("source"), f"source {source!r} points outside the repository"))
                ok = False
            else:
                spec.source = resolved
    return spec if ok else None


# --- machine manifests -------------------------------------------------------------------------------
def _parse_machine_manifest(
    path: str, raw: bytes, local_root_base: Path | None, errors: list[ManifestError]
) -> MachineAccess | None:
    before = len(errors)
    parsed = _parse_toml(path, raw, errors)
    if parsed is None:
        return None
    data, loc = parsed
    for key in data:
        if key != "machine":
            errors.append(ManifestError(path, loc.line(key) or loc.line(None, key),
                                        f"unknown table or key {key!r} (a machine manifest holds [machine])"))
    table = data.get("machine", {})
    if not isinstance(table, dict):
        errors.append(ManifestError(path, loc.line(None, "machine"), f"'machine' must be a table, not {_type_name(table)}"))
        return None

    def line(key: str | None = None) -> int | None:
        return loc.line("machine", key)

    for key in table:
        if key not in _MACHINE_KEYS:
            errors.append(ManifestError(path, line(key), f"unknown key {key!r} in [machine]"))
    transport = table.get("transport", "manual")
    if transport not in TRANSPORTS:
        shown = repr(transport) if isinstance(transport, str) else _type_name(transport)
        errors.append(ManifestError(path, line("transport"),
                                    f"unknown transport {shown} (use \"ssh\", \"local\" or \"manual\")"))
        return None
    strings: dict[str, str | None] = {}
    for key in ("host", "user", "root"):
        value = table.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            errors.append(ManifestError(path, line(key), f"{key} must be a non-empty string"))
            value = None
        strings[key] = value
    port = table.get("port", DEFAULT_SSH_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        shown = repr(port) if isinstance(port, int) and not isinstance(port, bool) else _type_name(port)
        errors.append(ManifestError(path, line("port"), f"port must be an integer from 1 to 65535, not {shown}"))
        port = DEFAULT_SSH_PORT
    host, user, root_text = strings["host"], strings["user"], strings["root"]
    if user is not None and not _NAME_RE.match(user):
        errors.append(ManifestError(path, line("user"), f"user {user!r} is not a valid user name"))
    root: Path | None = None
    if transport == "ssh" and host is None and "host" not in table:
        errors.append(ManifestError(path, line("transport"), "transport \"ssh\" needs a host"))
    if transport == "local":
        if root_text is None:
            if "root" not in table:
                errors.append(ManifestError(path, line("transport"), "transport \"local\" needs a root directory"))
        elif root_text.startswith("/"):
            root = Path(posixpath.normpath(root_text))
            # Anyone who can push a branch writes manifests: a root anywhere on the worker's host would
            # let a dry run read (and show diffs of) the portal's own files. Roots stay under the base.
            if local_root_base is not None and not root.is_relative_to(Path(posixpath.normpath(str(local_root_base)))):
                errors.append(ManifestError(path, line("root"),
                                            f"root {root_text!r} is outside the portal's local root base "
                                            "(CMDB_LOCAL_ROOT_BASE); use a path relative to it"))
                root = None
        elif ".." in root_text.split("/"):
            errors.append(ManifestError(path, line("root"), f"relative root {root_text!r} must not contain '..'"))
        elif local_root_base is None:
            errors.append(ManifestError(path, line("root"),
                                        f"relative root {root_text!r} needs a base directory (CMDB_LOCAL_ROOT_BASE)"))
        else:
            root = Path(local_root_base) / posixpath.normpath(root_text)
    if len(errors) > before:
        return None
    if transport == "manual":
        return MANUAL
    if transport == "local":
        return MachineAccess("local", root=root)
    return MachineAccess("ssh", host=host, port=port, user=user)


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
            access = _parse_machine_manifest(scan.manifest.path, blobs.get(scan.manifest.sha, b""),
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
    specs: list[_FileSpec] = []
    manifest_path = f"{app.path}/{MANIFEST}"
    if app.manifest is not None:
        specs, reload = _parse_app_manifest(manifest_path, app.path, blobs.get(app.manifest.sha, b""), errors)
        if reload:
            decl.reload[app.path] = reload
    overrides: dict[str, _FileSpec] = {}
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
        problem = _check_target(target)
        if problem:
            errors.append(ManifestError(origin_path, origin_line, problem))
            continue
        if target in claimed:
            errors.append(ManifestError(origin_path, origin_line, f"{target} is also declared by {claimed[target]}"))
            continue
        mode, kind = _git_mode(entry)
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


def declared_contents(
    repo: ConfigRepo, decl_files: Mapping[str, DeclaredFile] | Iterable[DeclaredFile]
) -> dict[str, bytes]:
    """The content of declared files by target path, with one ``read_blobs``."""
    items = list(decl_files.values() if isinstance(decl_files, Mapping) else decl_files)
    blobs = repo.read_blobs(f.blob_sha for f in items)
    return {f.target: blobs[f.blob_sha] for f in items if f.blob_sha in blobs}
