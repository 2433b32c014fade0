"""The remote POSIX ``sh`` scripts run over SSH, and the parsers of what they print.

A whole batch of paths is handled by ONE script fed on stdin (``/bin/sh -s``), which prints
NUL-separated records built from ``stat`` (``--printf``/``-c``), ``readlink`` and ``sha256sum``
(contents: ``base64``); paths travel single-quoted inside the script and come back only inside
NUL-terminated fields (or as an index), so spaces, quotes and newlines in names are safe.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from typing import Any

from fleet.transport.base import FileWrite, LiveFile, TransportError, file_kind


# --- remote scripts --------------------------------------------------------------------------------------
def quote(path: str) -> str:
    return "'" + path.replace("'", "'\\''") + "'"


_STAT_MARK = b"CMDB-STAT-1\0"
_READ_MARK = b"CMDB-READ-1\0"
_END_MARK = b"CMDB-END\0"

# Reads only: stat, readlink, sha256sum (or shasum), base64 (or od), wc. No redirection to a file.
_PRELUDE = r"""LC_ALL=C; export LC_ALL
for c in stat readlink wc; do
  command -v "$c" >/dev/null 2>&1 || { echo "cmdb: '$c' not found on the machine" >&2; exit 127; }
done
lnk() { t=$(readlink "$1"; echo .); t=${t%?}; t=${t%?}; }
"""

# With GNU coreutils, ONE `stat --printf` per batch of paths (records "name NUL meta NUL", the name
# being the argument as given) and ONE `xargs -0 sha256sum -z` over the regular readable files
# (records "hash  name NUL"); elsewhere (busybox...) one `stat -c` and one `sha256sum < file` per
# path. Only regular files are ever opened (never a symlink, FIFO or device). A missing path is
# told from an unreachable one (EACCES on a parent) by stat's message, for those paths only.
_STAT_SCRIPT = _PRELUDE + r"""if command -v sha256sum >/dev/null 2>&1; then h() { sha256sum; }
elif command -v shasum >/dev/null 2>&1; then h() { shasum -a 256; }
else echo "cmdb: sha256sum not found on the machine" >&2; exit 127; fi
G=; Z=
if stat --printf='' / >/dev/null 2>&1; then
  G=1
  if command -v xargs >/dev/null 2>&1 && sha256sum -z </dev/null >/dev/null 2>&1; then Z=1; fi
fi
F='%f %a %s %u %g %U %G'
b() { [ -z "$G" ] || stat --printf="%n\0$F\0" -- "$@" 2>/dev/null; return 0; }
k() {
  [ -n "$Z" ] || return 0
  for p do
    if [ -f "$p" ] && [ ! -L "$p" ] && [ -r "$p" ]; then printf '%s\0' "$p"; fi
  done | xargs -0 -r sha256sum -z -- 2>/dev/null
  return 0
}
s() {
  if [ -e "$2" ] || [ -L "$2" ]; then
    m=; [ -n "$G" ] || m=$(stat -c "$F" "$2" 2>/dev/null)
  else
    case $(stat -c "$F" "$2" 2>&1) in
      *'ermission denied'*) printf '%s\0P\0\0\0' "$1" ;;
      *) printf '%s\0M\0\0\0' "$1" ;;
    esac
    return 0
  fi
  if [ -L "$2" ]; then
    lnk "$2"; printf '%s\0L\0%s\0%s\0' "$1" "$m" "$t"
  elif [ -f "$2" ]; then
    if [ ! -r "$2" ]; then printf '%s\0U\0%s\0permission denied\0' "$1" "$m"
    elif [ -n "$Z" ]; then printf '%s\0F\0%s\0\0' "$1" "$m"
    else printf '%s\0F\0%s\0' "$1" "$m"; h < "$2" 2>/dev/null; printf '\0'; fi
  else
    printf '%s\0O\0%s\0\0' "$1" "$m"
  fi
  return 0
}
printf 'CMDB-STAT-1\0'
"""

_READ_SCRIPT = _PRELUDE + r"""if command -v base64 >/dev/null 2>&1; then E=B; e() { base64; }
else E=X; e() { od -An -v -tx1; }; fi
r() {
  if [ -L "$2" ]; then
    lnk "$2"; printf '%s\0L\0%s\0' "$1" "$t"
  elif [ -f "$2" ] && [ -r "$2" ]; then
    n=$(wc -c < "$2") || return 0
    [ "$((n + 0))" -le "$3" ] || return 0
    printf '%s\0%s\0' "$1" "$E"; e < "$2" 2>/dev/null || printf '!'; printf '\0'
  fi
  return 0
}
printf 'CMDB-READ-1\0'
"""


_BATCH = 500  # paths per `stat --printf` command line (far below ARG_MAX)


def stat_script(paths: list[str]) -> bytes:
    lines = [_STAT_SCRIPT]
    for i in range(0, len(paths), _BATCH):
        lines.append("b " + " ".join(quote(p) for p in paths[i : i + _BATCH]) + "\n")
    lines.append("printf '%s\\0' --\n")  # ends the batch records: no path is "--"
    for i in range(0, len(paths), _BATCH):
        lines.append("k " + " ".join(quote(p) for p in paths[i : i + _BATCH]) + "\n")
    lines.append("printf '%s\\0' --\n")  # ends the hash records
    lines += [f"s {i} {quote(p)}\n" for i, p in enumerate(paths)]
    lines.append("printf 'CMDB-END\\0'\n")
    return "".join(lines).encode("utf-8", errors="surrogateescape")


def read_script(paths: list[str], max_bytes: int) -> bytes:
    lines = [_READ_SCRIPT]
    lines += [f"r {i} {quote(p)} {int(max_bytes)}\n" for i, p in enumerate(paths)]
    lines.append("printf 'CMDB-END\\0'\n")
    return "".join(lines).encode("utf-8", errors="surrogateescape")


def _payload(out: bytes, mark: bytes) -> list[bytes]:
    start = out.find(mark)
    end = out.rfind(_END_MARK)  # anything a login script prints before or after is ignored
    if start < 0 or end < start + len(mark):
        raise TransportError("The machine's reply was cut short or not understood.")
    body = out[start + len(mark) : end]
    fields = body.split(b"\0")
    return fields[:-1] if fields and fields[-1] == b"" else fields


def decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="surrogateescape")


def _encode(path: str) -> bytes:
    return path.encode("utf-8", errors="surrogateescape")


def parse_stat_output(paths: list[str], out: bytes) -> dict[str, LiveFile]:
    fields = _payload(out, _STAT_MARK)
    batch: dict[bytes, bytes] = {}
    i = 0
    while i < len(fields) and fields[i] != b"--":
        if i + 1 >= len(fields):
            raise TransportError("The machine's reply was not understood.")
        batch[fields[i]] = fields[i + 1]
        i += 2
    hashes: dict[bytes, bytes] = {}
    i += 1
    while i < len(fields) and fields[i] != b"--":
        record = fields[i]  # "<64 hex>  <name>" (or " *<name>"), names unescaped with -z
        if len(record) > 66 and record[64:65] == b" ":
            hashes[record[66:]] = record[:64]
        i += 1
    records = fields[i + 1 :]
    if i >= len(fields) or len(records) % 4:
        raise TransportError("The machine's reply was not understood.")
    result: dict[str, LiveFile] = {}
    for j in range(0, len(records), 4):
        index, tag, meta_raw, extra = records[j : j + 4]
        path = paths[int(index)]
        if tag == b"M":
            result[path] = LiveFile(path, False)
            continue
        if tag == b"P":
            result[path] = LiveFile(path, False, error="permission denied (cannot look up the path)")
            continue
        meta = _parse_meta(meta_raw or batch.get(_encode(path), b""))
        if tag == b"L":
            meta["kind"] = "symlink"
            result[path] = LiveFile(path, True, sha256=hashlib.sha256(extra).hexdigest(),
                                    link_target=decode(extra), **meta)
        elif tag == b"F":
            digest = decode(extra or hashes.get(_encode(path), b"")).split()
            if digest and len(digest[0]) == 64:
                result[path] = LiveFile(path, True, sha256=digest[0].lower(), **meta)
            else:
                result[path] = LiveFile(path, True, error="read error", **meta)
        elif tag == b"U":
            result[path] = LiveFile(path, True, error=decode(extra) or "read error", **meta)
        else:
            result[path] = LiveFile(path, True, error=f"not a regular file ({meta.get('kind') or 'unknown'})", **meta)
    return result


def _parse_meta(raw: bytes) -> dict[str, Any]:
    """``%f %a %s %u %g %U %G`` (raw mode in hex, permissions in octal, size, ids, names)."""
    parts = decode(raw).split(" ")
    if len(parts) < 5:  # appeared between the batch stat and the look (a race): no metadata
        return {}
    try:
        raw_mode, perms, size = int(parts[0], 16), int(parts[1], 8), int(parts[2])
    except ValueError:
        return {}
    owner = parts[5] if len(parts) > 5 and parts[5] != "UNKNOWN" else parts[3]
    group = " ".join(parts[6:]) if len(parts) > 6 and parts[6] != "UNKNOWN" else parts[4]
    return {"mode": perms, "owner": owner, "group": group, "size": size, "kind": file_kind(raw_mode)}


def parse_read_output(paths: list[str], out: bytes) -> dict[str, bytes]:
    fields = _payload(out, _READ_MARK)
    result: dict[str, bytes] = {}
    i = 0
    while i + 2 < len(fields):
        index, tag, data = fields[i : i + 3]
        i += 3
        path = paths[int(index)]
        try:
            if tag == b"L":
                result[path] = data
            elif tag == b"B" and not data.endswith(b"!"):
                result[path] = base64.b64decode(data, validate=False)
            elif tag == b"X" and not data.endswith(b"!"):
                result[path] = bytes.fromhex(decode(data))
        except (ValueError, binascii.Error):
            continue
    return result


# Writes (deploy jobs only): one file per script, replaced atomically with a temporary file in the
# same directory and mv -T; the content travels base64-encoded in a here-document.
def write_script(op: FileWrite) -> bytes:
    target = quote(op.target)
    if op.content is None:
        return f"set -e\nrm -f -- {target}\n".encode()
    lines = [
        "set -e", "umask 077", f"t={target}", 'd=${t%/*}; [ -n "$d" ] || d=/', 'mkdir -p -- "$d"',
        f'tmp="$d/.cmdb-$$-{secrets.token_hex(4)}"', "trap 'rm -f -- \"$tmp\"' EXIT",
    ]
    if op.kind == "symlink":
        lines.append(f'ln -s -- {quote(op.content.decode("utf-8", "surrogateescape"))} "$tmp"')
    else:
        lines += ['base64 -d > "$tmp" <<\'CMDB_EOF\'', base64.encodebytes(op.content).decode().rstrip("\n"),
                  "CMDB_EOF", f'chmod {op.mode:04o} -- "$tmp"']
        if op.owner or op.group:
            lines.append(f'chown {quote((op.owner or "") + (":" + op.group if op.group else ""))} -- "$tmp"')
        lines.append('sync -- "$tmp" 2>/dev/null || sync')
    lines += ['mv -fT -- "$tmp" "$t"', "trap - EXIT"]
    return ("\n".join(lines) + "\n").encode()
