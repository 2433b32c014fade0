"""Reading what ``git`` prints: its log, tree listings and patches, as :mod:`cmdb.gittypes` dataclasses.

Plain text in, dataclasses out; nothing here starts Git or knows where it keeps anything, so
:mod:`cmdb.gitrepo` stays the one module that speaks to Git and this one is tested on strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

from cmdb.gittypes import CommitInfo, FileDiff, TreeEntry

FIELD = "\x1f"
RECORD = "\x1e"
# ``git log --format=`` of what parse_log reads: one record per commit, fields apart.
LOG_FORMAT = f"--format={RECORD}%H{FIELD}%P{FIELD}%an{FIELD}%ae{FIELD}%ct{FIELD}%s"
_DIFF_HEADER = re.compile(r"^diff --git a/(.*) b/(.*)$")


def decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def parse_log(raw: bytes, with_names: bool) -> Iterator[tuple[CommitInfo, list[str]]]:
    """(commit, changed paths) per record of ``git log LOG_FORMAT`` (``--name-only -z`` when ``with_names``)."""
    for chunk in raw.split(RECORD.encode()):
        if not chunk.strip(b"\0\n"):
            continue
        header, _, names = chunk.partition(b"\n")
        # With -z, a commit without paths ends in NUL instead of a newline.
        fields = decode(header.strip(b"\0\n")).split(FIELD)
        if len(fields) < 6:
            continue
        sha, parents, name, email, ts, summary = fields[:6]
        info = CommitInfo(sha=sha, author_name=name, author_email=email, summary=summary,
                          committed_at=datetime.fromtimestamp(int(ts), tz=UTC), parents=tuple(parents.split()))
        if not with_names:
            yield info, []
            continue
        # One decode per commit, not per path: the first commit of a large repository lists them all.
        text = decode(names.strip(b"\n\0"))
        yield info, [p.lstrip("\n") for p in text.split("\0") if p.strip("\n")]


def parse_ls_tree(raw: bytes) -> Iterator[TreeEntry]:
    """The entries of ``git ls-tree -l -z`` output, blob sizes included."""
    for record in raw.split(b"\0"):
        if not record:
            continue
        meta, _, name = record.partition(b"\t")
        mode, kind, obj, size = meta.decode().split()
        try:
            path = name.decode()
        except UnicodeDecodeError:
            path = decode(name)
        yield TreeEntry(path, mode, kind, obj, None if size == "-" else int(size))


def split_patch(text: str) -> Iterator[FileDiff]:
    """One FileDiff per file of a ``git diff`` patch."""
    current: list[str] = []
    old_path = new_path = ""

    def emit() -> FileDiff:
        body = "\n".join(current)
        status = "M"
        if "\nnew file mode" in body:
            status = "A"
        elif "\ndeleted file mode" in body:
            status = "D"
        binary = "\nBinary files " in body or "\nGIT binary patch" in body
        return FileDiff(path=new_path, old_path=old_path, status=status, patch=body, is_binary=binary)

    for line in text.splitlines():
        match = _DIFF_HEADER.match(line)
        if match:
            if current:
                yield emit()
            current = [line]
            old_path, new_path = match.group(1), match.group(2)
        elif current:
            current.append(line)
    if current:
        yield emit()
