"""What a manifest says: the schema of ``manifest.toml`` files and the declared-file records.

Pure parsing (no Git calls, no Django). The convention:

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
them instead of guessing. :mod:`fleet.declared` assembles these into one declaration per machine.
"""

from __future__ import annotations

import posixpath
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from cmdb.gitrepo import TreeEntry
from fleet.paths import is_normalised_absolute

MANIFEST = "manifest.toml"
FILES_DIR = "files"
TRANSPORTS = ("ssh", "local", "manual")
DEFAULT_SSH_PORT = 22

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


def check_target(target: str) -> str | None:
    """None when ``target`` is a clean absolute path, else the reason."""
    if not target.startswith("/"):
        return f"target path {target!r} is not absolute"
    if "\0" in target or "\\" in target:
        return f"target path {target!r} contains a NUL or backslash"
    if not is_normalised_absolute(target):
        return f"target path {target!r} must be a normalised absolute path (no '..', '.', '//' or trailing '/')"
    return None


def git_mode(entry: TreeEntry) -> tuple[int, str]:
    if entry.is_symlink:
        return 0o777, "symlink"
    return (0o755 if entry.is_executable else 0o644), "file"


# --- application manifests ---------------------------------------------------------------------------
@dataclass(slots=True)
class FileSpec:
    path: str
    line: int | None
    mode: int | None = None
    owner: str | None = None
    group: str | None = None
    source: str | None = None  # resolved repository path
    secret: bool = False


def parse_app_manifest(
    path: str, app_path: str, raw: bytes, errors: list[ManifestError]
) -> tuple[list[FileSpec], list[str] | None]:
    parsed = _parse_toml(path, raw, errors)
    if parsed is None:
        return [], None
    data, loc = parsed
    specs: list[FileSpec] = []
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
) -> FileSpec | None:
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
    problem = check_target(target)
    if problem:
        errors.append(ManifestError(path, line("path"), problem))
        return None
    spec = FileSpec(target, line("path"))
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
def parse_machine_manifest(
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
