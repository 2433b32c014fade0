"""The lint rules of identification: what is wrong with a CI or one of its files.

Pure functions over tree entries and blob facts (no database): :mod:`cmdb.indexer` calls them while
it writes the index and stores what they return as ``LintWarning`` rows.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import NamedTuple

from cmdb import layout
from cmdb.gitrepo import TreeEntry
from cmdb.models import LintWarning

Code = LintWarning.Code
Severity = LintWarning.Severity


@dataclass
class CIContent:
    """What one CI directory holds at a commit: its README entry and the files it owns."""

    ref: layout.CIRef
    readme: TreeEntry | None = None
    files: list[TreeEntry] = field(default_factory=list)


class Facts(NamedTuple):
    """What reading a blob taught us."""

    is_binary: bool
    private_key: bool  # holds an unencrypted private key
    encrypted_key: bool


class Warn(NamedTuple):
    path: str
    code: str
    severity: str
    message: str


def decode_readme(raw: bytes) -> tuple[str, bool]:
    """(text, was valid UTF-8)."""
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), False


def bad_name(name: str) -> bool:
    return any(ch.isspace() for ch in name) or not name.isascii()


def lint_ci(content: CIContent, texts: dict[str, bytes]) -> list[Warn]:
    ref = content.ref
    out: list[Warn] = []
    label = f"the {ref.kind} {ref.path or 'root'}"
    if content.readme is None:
        out.append(Warn(ref.path, Code.MISSING_README, Severity.ERROR, f"{label} has no README.md."))
    else:
        text, utf8 = decode_readme(texts.get(content.readme.sha, b""))
        if not text.strip():
            out.append(Warn(content.readme.path, Code.EMPTY_README, Severity.WARNING, f"The README of {label} is empty."))
        if not utf8:
            out.append(Warn(content.readme.path, Code.NOT_UTF8, Severity.WARNING,
                             "README.md is not valid UTF-8; shown with replacement characters."))
    if ref.path and bad_name(ref.name):
        out.append(Warn(ref.path, Code.BAD_NAME, Severity.WARNING,
                         f"Folder name {ref.name!r} has spaces or non-ASCII letters; prefer [a-z0-9-_]."))
    if ref.kind == layout.ENVIRONMENT:
        for f in content.files:
            if not layout.is_image(f.path):
                out.append(Warn(f.path, Code.STRAY_FILE, Severity.WARNING,
                                 "Only README.md, pictures and _common/ belong at environment level; "
                                 "move this file into a machine or _common/."))
    seen_dirs: set[str] = set()
    for f in content.files:
        rel_dir = posixpath.dirname(layout.relative_to_ci(f.path, ref.path))
        if not rel_dir or rel_dir in seen_dirs:
            continue
        seen_dirs.add(rel_dir)
        for part in rel_dir.split("/"):
            if part not in seen_dirs and bad_name(part):
                seen_dirs.add(part)
                out.append(Warn(f.path, Code.BAD_NAME, Severity.WARNING,
                                 f"Folder name {part!r} has spaces or non-ASCII letters."))
    return out


def lint_artifact(entry: TreeEntry, target: str, binary: bool, image: bool, fact: Facts | None,
                   large: int) -> list[Warn]:
    out: list[Warn] = []
    if entry.type == "commit":
        return [Warn(entry.path, Code.SUBMODULE, Severity.INFO,
                      "A Git submodule: its content is not part of this repository.")]
    if entry.is_symlink:
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(entry.path), target))
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            return [Warn(entry.path, Code.SYMLINK_OUTSIDE, Severity.ERROR,
                          f"Symbolic link to {target!r}, outside the repository (never followed).")]
        return [Warn(entry.path, Code.SYMLINK, Severity.INFO,
                      f"Symbolic link to {target!r} (not followed); prefer a copy or _common/.")]
    size = entry.size or 0
    if size > large:
        out.append(Warn(entry.path, Code.LARGE_FILE, Severity.WARNING,
                         f"{size:,} bytes: very large files slow every clone; consider storing it elsewhere."))
    if binary and not image:
        out.append(Warn(entry.path, Code.BINARY_FILE, Severity.INFO,
                         "Binary file: diffs and reviews cannot show its changes."))
    if fact is not None and fact.private_key:
        out.append(Warn(entry.path, Code.PLAINTEXT_SECRET, Severity.ERROR,
                         "An unencrypted private key is committed in plain text; encrypt it "
                         "(e.g. sops, git-crypt) or keep it out of the repository."))
    return out
