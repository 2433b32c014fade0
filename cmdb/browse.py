"""Presentation helpers of the browser UI: highlighting, secret masking of file views and diffs, raw types.

Pure functions of what ``cmdb.services`` returns; nothing here touches the database. The only Git access
is through ``services`` (``blob_at`` for ``.cmdb-secrets``, the clone's ``read_blobs`` to look at the
blobs named by a diff's ``index`` lines, so a key file is masked even in a hunk that shows no key marker).
"""

from __future__ import annotations

import mimetypes
import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html import unescape

from django.conf import settings
from django.urls import reverse
from django.utils.html import escape, strip_tags
from django.utils.safestring import SafeString, mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer, TextLexer, get_lexer_for_filename
from pygments.util import ClassNotFound

from cmdb import indexer, services
from cmdb.gitrepo import FileDiff, GitError
from cmdb.markdown import render_markdown, sanitize
from cmdb.secrets import MASK, has_private_key, mask_text, name_is_secret
from portal.listing import with_query

# Above these sizes, text is shown without syntax colouring (Pygments' lexers are slow on megabytes).
HIGHLIGHT_MAX_CHARS = 200_000
DIFF_MAX_CHARS = 300_000

# --- highlighting ---------------------------------------------------------------------------------------


def lexer_for(filename: str, size: int = 0):
    if size > HIGHLIGHT_MAX_CHARS:
        return TextLexer(stripnl=False)
    try:
        return get_lexer_for_filename(posixpath.basename(filename), stripnl=False)
    except ClassNotFound:
        return TextLexer(stripnl=False)


def highlight_file(filename: str, text: str) -> SafeString:
    """``text`` as a Pygments table with line numbers (anchors ``#L-<n>``), class ``highlight``."""
    formatter = HtmlFormatter(cssclass="highlight", linenos="table", lineanchors="L", anchorlinenos=True, wrapcode=True)
    return mark_safe(highlight(text, lexer_for(filename, len(text)), formatter))  # noqa: S308 - Pygments escapes


def highlight_diff(patch: str) -> SafeString:
    formatter = HtmlFormatter(cssclass="highlight diff", wrapcode=True)
    lexer = DiffLexer(stripnl=False) if len(patch) <= HIGHLIGHT_MAX_CHARS else TextLexer(stripnl=False)
    return mark_safe(highlight(patch, lexer, formatter))  # noqa: S308 - Pygments escapes


def snippet_html(snippet: str) -> SafeString:
    """A search snippet: escaped, then its \\x02/\\x03 match markers turned into <mark> elements."""
    escaped = str(escape(snippet))
    # A marker left open (the engine cut the excerpt) is closed at the end.
    opened = escaped.count("\x02") - escaped.count("\x03")
    marked = escaped.replace("\x02", "<mark>").replace("\x03", "</mark>") + "</mark>" * max(opened, 0)
    return mark_safe(marked)  # noqa: S308 - escaped above


def decode_text(content: bytes) -> str:
    return content.decode("utf-8", errors="replace")


def readme_for(html: str, *, can_view_secrets: bool) -> SafeString:
    """A CI's rendered README (sanitized by services) with any pasted private key masked.

    Masking cuts text out of HTML, so the result is sanitized again: a cut can never open an attribute.
    """
    if not can_view_secrets and "PRIVATE KEY" in html:
        html = sanitize(mask_text(html))
    return mark_safe(html)  # noqa: S308 - sanitized by cmdb.markdown


# --- file views -----------------------------------------------------------------------------------------


@dataclass
class FileView:
    """What the artifact page shows for one blob."""

    mode: str  # "symlink" | "masked" | "image" | "binary" | "text"
    html: SafeString | None = None
    symlink_target: str = ""
    truncated: bool = False
    shown_bytes: int = 0
    lines: int = 0


def file_view(blob: services.BlobView, *, can_view_secrets: bool) -> FileView:
    if blob.entry.is_symlink:
        return FileView("symlink", symlink_target=decode_text(blob.content))
    if blob.is_secret and not can_view_secrets:
        return FileView("masked")
    if blob.is_image:
        return FileView("image")
    if blob.is_binary:
        return FileView("binary")
    limit = settings.CMDB_MAX_VIEW_BYTES
    truncated = len(blob.content) > limit
    text = decode_text(blob.content[:limit])
    if not can_view_secrets:
        text = mask_text(text)
    return FileView(
        "text", html=highlight_file(blob.path, text), truncated=truncated, shown_bytes=min(len(blob.content), limit),
        lines=text.count("\n") + (0 if text.endswith("\n") or not text else 1),
    )


# --- raw responses --------------------------------------------------------------------------------------

_ACTIVE_TYPES = re.compile(r"html|xml|javascript|ecmascript", re.I)


def raw_content_type(path: str, blob: services.BlobView) -> tuple[str, bool]:
    """(Content-Type, may be shown inline) for a blob served by the raw endpoint."""
    if blob.entry.is_symlink:
        return "text/plain; charset=utf-8", True
    guessed, encoding = mimetypes.guess_type(posixpath.basename(path), strict=False)
    if encoding or guessed is None:
        guessed = "application/octet-stream" if (encoding or blob.is_binary) else "text/plain"
    elif guessed.startswith("text/") and blob.is_binary:
        guessed = "application/octet-stream"
    # Active content (HTML, XML, SVG, scripts) is never shown as a page; unknown binaries are downloads.
    inline = not _ACTIVE_TYPES.search(guessed) and guessed != "application/octet-stream"
    if guessed.startswith("text/") or guessed in ("application/json", "image/svg+xml"):
        guessed += "; charset=utf-8"
    return guessed, inline


# --- diffs ----------------------------------------------------------------------------------------------

_INDEX_LINE = re.compile(r"^index ([0-9a-f]+)\.\.([0-9a-f]+)", re.M)
_NULL_SHA = re.compile(r"^0+$")


@dataclass
class DiffView:
    path: str
    old_path: str
    status: str
    is_binary: bool
    is_secret: bool
    masked: bool
    truncated: bool
    html: SafeString | None
    additions: int
    deletions: int
    url: str | None = None  # the file's page at the new revision (None for deletions)


def _blob_shas(diff: FileDiff) -> list[str]:
    match = _INDEX_LINE.search(diff.patch)
    if not match:
        return []
    return [s for s in match.groups() if not _NULL_SHA.match(s)]


def secret_diff_paths(diffs: list[FileDiff], revs: Iterable[str | None]) -> set[str]:
    """Paths of the diffs that are secret on either side: by name, by ``.cmdb-secrets`` or by content."""
    patterns = indexer.secret_patterns(services.get_repo(), *(rev for rev in revs if rev))
    matchers: list[Callable[[str], bool]] = [name_is_secret, patterns.match]
    secret: set[str] = set()
    to_read: dict[str, list[str]] = {}
    for diff in diffs:
        if any(m(p) for m in matchers for p in {diff.path, diff.old_path}):
            secret.add(diff.path)
        elif not diff.is_binary:
            to_read[diff.path] = _blob_shas(diff)
    wanted = [sha for shas in to_read.values() for sha in shas]
    try:
        blobs = services.get_repo().read_blobs(wanted) if wanted else {}
    except GitError:
        return secret | set(to_read)  # cannot look: mask rather than leak
    for path, shas in to_read.items():
        if any(has_private_key(blobs.get(sha)) for sha in shas):
            secret.add(path)
    return secret


_GIT_HEADER_LINES = ("diff --git ", "index ", "--- ", "+++ ", "Binary files ")


def _split_header(patch: str) -> tuple[str, str]:
    """(git header lines, hunks from the first ``@@``) of one file's patch."""
    if patch.startswith("@@"):
        return "", patch
    head, sep, rest = patch.partition("\n@@")
    return (head, "@@" + rest) if sep else (patch, "")


def present_diffs(
    diffs: list[FileDiff], *, revs: Iterable[str | None], can_view_secrets: bool, file_rev: str | None = None
) -> list[DiffView]:
    """Diffs ready to show: secret files masked (unless allowed), key blocks masked, highlighted."""
    secret = secret_diff_paths(diffs, revs)
    views = []
    for diff in diffs:
        is_secret = diff.path in secret
        masked = is_secret and not can_view_secrets
        header, hunks = _split_header(diff.patch)
        adds = dels = 0
        for line in hunks.splitlines():
            if line.startswith("+"):
                adds += 1
            elif line.startswith("-"):
                dels += 1
        if masked:
            shown = MASK + "\n"
        else:
            # The card shows the path: of the git header only mode changes and the like are kept.
            shown = "".join(f"{line}\n" for line in header.splitlines() if not line.startswith(_GIT_HEADER_LINES))
            shown += hunks
            if not can_view_secrets:
                shown = mask_text(shown)
        truncated = len(shown) > DIFF_MAX_CHARS
        if truncated:
            shown = shown[:DIFF_MAX_CHARS]
        html = highlight_diff(shown) if shown.strip() and not (diff.is_binary and not masked) else None
        views.append(DiffView(
            path=diff.path, old_path=diff.old_path, status=diff.status, is_binary=diff.is_binary,
            is_secret=is_secret, masked=masked, truncated=truncated, html=html, additions=adds, deletions=dels,
            url=services.portal_url("file", diff.path, file_rev) if diff.status != "D" else None,
        ))
    return views


def commit_row(info, path: str = "") -> dict:
    """A commit as the templates show it in lists (``path``: the file or CI the list is about)."""
    return {
        "sha": info.sha,
        "short_sha": info.short_sha,
        "summary": info.summary,
        "author": info.author_name,
        "email": info.author_email,
        "date": info.committed_at,
        "url": with_query(reverse("cmdb:commit_detail", kwargs={"sha": info.sha}), path=path),
    }


_PARAGRAPH = re.compile(r"<p>(.*?)</p>", re.DOTALL)


def excerpt(markdown: str, limit: int = 160, *, rendered: str = "") -> str:
    """The first paragraph of a README as plain text, for cards: taken from the sanitised rendering
    (``rendered`` when the caller has it), so no Markdown syntax shows; cut at a word with "…"."""
    page = rendered or render_markdown(markdown)
    for paragraph in _PARAGRAPH.findall(page):
        text = " ".join(unescape(strip_tags(paragraph)).split())
        if not text or "PRIVATE KEY" in text:
            continue  # a paragraph holding only a picture, or a key pasted in (cards are never masked)
        if len(text) <= limit:
            return text
        cut = text[: limit - 1]
        if " " in cut and not text[limit - 1].isspace():
            cut = cut.rsplit(" ", 1)[0]
        return cut.rstrip(" ,;:.-–—") + "…"
    return ""
