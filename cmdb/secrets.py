"""Which artifacts are secrets, and masking them.

A file is a secret when its name says so (private-key names, ``*.key``), when its content holds a
PEM/OpenSSH private key, or when the repository lists it in ``.cmdb-secrets`` at the top level
(one glob per line, ``#`` comments; ``*`` stays inside a folder, ``**`` crosses folders).
"""

from __future__ import annotations

import posixpath
import re
from functools import lru_cache

SECRETS_FILE = ".cmdb-secrets"
MASK = "•••••••• (secret: masked)"

_PRIVATE_KEY = re.compile(rb"-----BEGIN ([A-Z0-9 ]+ )?PRIVATE KEY( BLOCK)?-----")
_SECRET_NAMES = {"id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", ".htpasswd", "shadow", ".pgpass", ".netrc"}
_SECRET_EXTENSIONS = {".key", ".p12", ".pfx", ".jks", ".keystore", ".kdbx"}


def has_private_key(content: bytes | None) -> bool:
    return bool(content) and _PRIVATE_KEY.search(content) is not None  # type: ignore[arg-type]


def name_is_secret(path: str) -> bool:
    return _name_is_secret(path.rpartition("/")[2])


@lru_cache(maxsize=8192)
def _name_is_secret(name: str) -> bool:
    name = name.lower()
    return name in _SECRET_NAMES or posixpath.splitext(name)[1] in _SECRET_EXTENSIONS


class SecretPatterns:
    """The globs of one or more ``.cmdb-secrets`` files, plus paths known to be secret, compiled once
    per use: ``match(path)`` is one regex call and one set lookup, however many globs."""

    def __init__(self, text: str = "", *, paths: frozenset[str] = frozenset()):
        self.patterns: list[re.Pattern[str]] = []
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                self.patterns.append(_glob_to_regex(line.lstrip("/")))
        self.paths = paths
        self._combined = re.compile("|".join(f"(?:{p.pattern})" for p in self.patterns)) if self.patterns else None

    @classmethod
    def union(cls, texts: list[str], *, paths: frozenset[str] = frozenset()) -> SecretPatterns:
        """Secret in any of ``texts`` (the ``.cmdb-secrets`` of several revisions), or one of ``paths``."""
        return cls("\n".join(texts), paths=paths)

    def match(self, path: str) -> bool:
        return path in self.paths or (self._combined is not None and self._combined.match(path) is not None)


def _glob_to_regex(glob: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    body = "".join(out)
    # A pattern without a slash matches the name anywhere, like .gitignore.
    if "/" not in glob:
        body = "(?:.*/)?" + body
    return re.compile(f"^{body}(?:/.*)?$")


def is_secret(path: str, content: bytes | None, patterns: SecretPatterns) -> bool:
    return name_is_secret(path) or patterns.match(path) or has_private_key(content)


def mask_text(text: str) -> str:
    """Replace every private-key block in ``text`` (a diff, a search excerpt) with the mask."""
    return re.sub(
        r"-----BEGIN ([A-Z0-9 ]+ )?PRIVATE KEY( BLOCK)?-----.*?(-----END ([A-Z0-9 ]+ )?PRIVATE KEY( BLOCK)?-----|\Z)",
        MASK,
        text,
        flags=re.S,
    )


