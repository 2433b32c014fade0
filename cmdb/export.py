"""The offline export: the whole repository's documentation at one revision as a static site in a zip,
for the day the portal itself is gone.

The archive holds one folder, ``cm-docs-<sha>/``: ``index.html`` (revision, commit, export time, how
to read it, the environments), ``assets/`` (the stylesheets the pages use, no script) and ``pages/``
(every CI's README and artifact listing, the rebuild runbook of every machine and environment, the
global artifact listing, and the pictures the READMEs show). Every page sits in ``pages/``, so a
README is rendered once and its relative links work on its CI page and in every runbook alike.

- READMEs go through the one renderer (:mod:`cmdb.markdown`); links to READMEs, folders and files of
  the repository become the exported pages (files: their row in the owner's listing), external
  links stay, and anything that would leave the archive (site-absolute paths, other hosts' images,
  paths outside the repository, files that are not there) keeps its text and loses its link.
- Runbooks come from :func:`cmdb.runbook.environment_books`, the builder of the portal's tab.
- Secrets (the portal's rule: :func:`cmdb.indexer.secret_patterns` plus private keys by content) are
  listed as "secret, not exported", with neither size nor checksum; a key pasted in a README is
  masked before it is rendered. Nothing secret is read into the archive.
- File names come from repository paths that may be hostile, so each is rebuilt from lower-case
  letters, digits, ``.``, ``_`` and ``-``; any other segment is spelled that way and followed by
  ``~`` and a digest of its real name, which keeps names distinct on case-insensitive disks too.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from django.contrib.staticfiles import finders
from django.http import FileResponse
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle

from cmdb import indexer, layout, lint, runbook, services
from cmdb.gitrepo import TreeEntry
from cmdb.markdown import render_markdown
from cmdb.runbook import Declared
from cmdb.secrets import has_private_key, is_secret, mask_text
from fleet.declared import is_machine_dir

# Archive name -> static file: what the pages link, found as the portal finds its own static files.
ASSETS = {
    "bootstrap.min.css": "vendor/bootstrap/css/bootstrap.min.css",
    "pygments.css": "css/pygments.css",
    "portal.css": "css/portal.css",
    "print.css": "css/print.css",
}
PAGES = "pages"
_CLEAN = re.compile(r"[a-z0-9_][a-z0-9._-]{0,59}")
_EXTERNAL = ("http://", "https://", "mailto:")


class ExportError(Exception):
    """The export cannot be made (e.g. a static asset is missing); shown to the caller."""


def _segment(name: str) -> str:
    if _CLEAN.fullmatch(name) and not name.endswith(".html"):
        return name
    readable = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.")[:40]
    return f"{readable}~{hashlib.sha256(name.encode('utf-8', 'surrogateescape')).hexdigest()[:12]}"


def flat_name(kind: str, path: str, suffix: str = ".html") -> str:
    """The file name in ``pages/`` of the ``kind`` page (``ci``, ``runbook``, ``raw``) of ``path``.

    ``+`` separates the segments and never occurs in one, so two paths never share a name."""
    return "+".join([kind, *(_segment(p) for p in path.split("/") if p)]) + suffix


def _anchor(path: str) -> str:
    return "f-" + hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:16]


@dataclass
class Row:
    """One file of the listing."""

    path: str
    name: str  # relative to its CI
    ci: str
    kind: str  # "file", "symlink", "submodule"
    size: int | None = None
    sha256: str = ""
    secret: bool = False
    target: str = ""  # a symlink's
    anchor: str = ""
    page: str = ""


@dataclass
class CIPage:
    path: str
    kind: str
    name: str
    file: str
    html: SafeString | str = ""
    has_readme: bool = False
    children: list[CIPage] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    runbook: str = ""
    declared: Declared | None = None
    crumbs: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ExportInfo:
    sha: str
    rev: str
    folder: str
    files: int = 0  # written into the archive


class _Export:
    def __init__(self, rev: str | None):
        self.sha, _carry = services.resolve_rev(rev)
        self.rev = rev or "the indexed commit"
        self.repo = services.get_repo()
        self.folder = f"cm-docs-{self.sha[:12]}"
        self.names: set[str] = set()  # every file of pages/, for the link filter
        self.images: dict[str, TreeEntry] = {}  # raw name -> entry, the pictures the READMEs show
        self.now = timezone.now()

    # --- reading the tree -----------------------------------------------------------------------------
    def read_tree(self) -> None:
        entries = [e for e in self.repo.ls_tree(self.sha) if not layout.is_hidden(e.path)]
        self.entries = {e.path: e for e in entries}
        self.dirs = {posixpath.dirname(p) for p in self.entries}
        for path in list(self.dirs):
            while path:
                path = posixpath.dirname(path)
                self.dirs.add(path)
        self.cis: dict[str, CIPage] = {}
        for d in sorted(self.dirs):
            ref = layout.ci_for_dir(d)
            if ref is not None:
                self.cis[d] = CIPage(d, ref.kind, ref.name, flat_name("ci", d))
        self.names.update(page.file for page in self.cis.values())
        patterns = indexer.secret_patterns(self.repo, self.sha)
        self.readmes: dict[str, TreeEntry] = {}
        self.rows: dict[str, Row] = {}
        to_hash: dict[str, list[Row]] = defaultdict(list)
        for e in entries:
            owner = layout.owning_ci(e.path)
            if owner is None or owner.path not in self.cis:
                continue
            if e.type == "blob" and layout.is_readme(e.path) and not is_secret(e.path, None, patterns):
                self.readmes[owner.path] = e
                continue
            page = self.cis[owner.path]
            row = Row(e.path, layout.relative_to_ci(e.path, owner.path), owner.path,
                      "submodule" if e.type == "commit" else "symlink" if e.is_symlink else "file",
                      anchor=_anchor(e.path), page=page.file)
            row.secret = e.type == "blob" and is_secret(e.path, None, patterns)
            if e.type == "blob" and not row.secret:
                row.size = e.size
                to_hash[e.sha].append(row)
            page.rows.append(row)
            self.rows[e.path] = row
        # Streamed: a repository's files are hashed one after the other, never all held at once.
        for sha, content in self.repo.iter_blobs(to_hash):
            digest = hashlib.sha256(content).hexdigest()
            for row in to_hash[sha]:
                if row.kind == "symlink":
                    row.target = content.decode("utf-8", "replace")
                if has_private_key(content):
                    row.secret, row.size = True, None
                else:
                    row.sha256 = digest

    # --- links ----------------------------------------------------------------------------------------
    def resolve(self, kind: str, path: str) -> str | None:
        if kind == "raw":
            entry = self.entries.get(path)
            row = self.rows.get(path)
            if entry is None or row is None or row.secret or row.kind != "file" or not layout.is_image(path):
                return None
            name = flat_name("raw", path, "")
            ext = posixpath.splitext(path)[1].lower()
            name += "" if name.endswith(ext) else ext
            self.images[name] = entry
            self.names.add(name)
            return name
        if kind == "file":
            row = self.rows.get(path)
            if row is not None:
                return f"{row.page}#{row.anchor}"
            if path in self.entries:  # a README: its CI's page
                owner = layout.owning_ci(path)
                return self.cis[owner.path].file if owner and owner.path in self.cis else None
        if path in self.cis:
            return self.cis[path].file
        if path in self.dirs:  # a folder inside a CI: the CI's page, as in the portal
            owner = layout.owning_ci(path + "/x")
            return self.cis[owner.path].file if owner and owner.path in self.cis else None
        return None

    def link(self, kind: str, path: str) -> str:
        return self.resolve(kind, path) or ""

    def keep_url(self, tag: str, attribute: str, url: str) -> bool:
        """Only what opens without a server or a network: this archive's pages, in-page anchors and
        external links to follow by hand (never an external picture: it would be fetched)."""
        if url.startswith("#"):
            return len(url) > 1  # "#" alone is where the renderer sends links out of the repository
        if tag == "a" and url.lower().startswith(_EXTERNAL):
            return True
        parts = urlsplit(url)
        return not (parts.scheme or parts.netloc or parts.query) and parts.path in self.names

    # --- rendering ------------------------------------------------------------------------------------
    def render_readmes(self) -> None:
        texts = self.repo.read_blobs(e.sha for e in self.readmes.values())
        for path, entry in self.readmes.items():
            page = self.cis[path]
            page.has_readme = True
            text = lint.decode_readme(texts.get(entry.sha, b""))[0]
            if text.strip():
                page.html = mark_safe(render_markdown(  # noqa: S308 - sanitized by the renderer
                    mask_text(text), base_dir=path, resolver=self.resolve, keep_url=self.keep_url))

    def runbooks(self, put: Callable[[str, str], None]) -> None:
        """Write every environment's and machine's runbook page with ``put(name, html)`` as it is made:
        thousands of machines' pages are never held at once."""
        html = {path: page.html for path, page in self.cis.items()}
        for env in sorted(p for p, page in self.cis.items() if page.kind == layout.ENVIRONMENT):
            machines = sorted(p for p, page in self.cis.items()
                              if page.kind == layout.MACHINE and posixpath.dirname(p) == env
                              and is_machine_dir(env, posixpath.basename(p)))
            chunks = [machines[i:i + runbook.MACHINES_PER_PAGE]
                      for i in range(0, len(machines), runbook.MACHINES_PER_PAGE)] or [[]]
            self.cis[env].runbook = flat_name("runbook", env)
            for number, chunk in enumerate(chunks, 1):
                shared, books = runbook.environment_books(self.sha, env, chunk, html=html, link=self.link)
                name = flat_name("runbook", env, f"~p{number}.html" if number > 1 else ".html")
                pages = [(n, flat_name("runbook", env, f"~p{n}.html" if n > 1 else ".html"))
                         for n in range(1, len(chunks) + 1)] if len(chunks) > 1 else []
                put(name, self.page("cmdb/export/runbook.html", env, {
                    "book": runbook.Runbook(env, layout.ENVIRONMENT, self.sha, None, shared, books),
                    "pages": pages, "number": number}))
                for book in books:
                    self.cis[book.path].runbook = flat_name("runbook", book.path)
                    for section in book.sections:
                        if section.declared is not None:
                            self.cis[section.path].declared = section.declared
                    put(flat_name("runbook", book.path), self.page("cmdb/export/runbook.html", book.path, {
                        "book": runbook.Runbook(book.path, layout.MACHINE, self.sha, None, shared, [book])}))

    def crumbs(self, path: str) -> list[tuple[str, str]]:
        parts = path.split("/") if path else []
        return [("Repository", self.link("page", "")),
                *((parts[i - 1], self.link("page", "/".join(parts[:i]))) for i in range(1, len(parts) + 1))]

    def page(self, template: str, path: str | None, context: dict) -> str:
        return render_to_string(template, {"export": self, "assets": "../assets/", "home": "../index.html",
                                           "crumbs": self.crumbs(path) if path is not None else [], **context})


def _asset(name: str) -> bytes:
    found = finders.find(ASSETS[name])
    if not found:
        raise ExportError(f"The stylesheet {ASSETS[name]} is missing (run npm ci).")
    return Path(found if isinstance(found, str) else found[0]).read_bytes()


def write_export(rev: str | None, out: IO[bytes]) -> ExportInfo:
    """Write the offline export of revision ``rev`` (None: the indexed commit) into ``out`` as a zip.

    Raises UnknownRevision for a revision Git does not know, GitError when the clone cannot be read."""
    ex = _Export(rev)
    ex.read_tree()
    info = ExportInfo(ex.sha, ex.rev, ex.folder)
    ex.render_readmes()
    archive = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED)
    stamp = ex.now.timetuple()[:6]

    def put(name: str, data: bytes | str) -> None:
        archive.writestr(zipfile.ZipInfo(f"{ex.folder}/{name}", date_time=stamp), data,
                         compress_type=zipfile.ZIP_DEFLATED)
        info.files += 1

    with archive:
        _write(ex, put)
    return info


def _write(ex: _Export, put: Callable[[str, bytes | str], None]) -> None:
    ex.runbooks(lambda name, html: put(f"{PAGES}/{name}", html))  # first: CI pages link them
    for path, page in ex.cis.items():
        parent = ex.cis.get(posixpath.dirname(path)) if path else None
        if parent is not None:
            parent.children.append(page)
    for page in ex.cis.values():
        page.children.sort(key=lambda c: (c.kind != layout.COMMON_KIND, c.path))
        page.rows.sort(key=lambda r: r.path)
        page.crumbs = ex.crumbs(page.path)
    root = ex.cis.get("")
    environments = [c for c in (root.children if root else []) if c.kind == layout.ENVIRONMENT]
    for name in ASSETS:
        put(f"assets/{name}", _asset(name))
    put("index.html", render_to_string("cmdb/export/index.html", {
        "export": ex, "assets": "assets/", "home": "index.html", "pages": f"{PAGES}/", "root": root,
        "environments": environments, "files": len(ex.rows),
        "secrets": sum(r.secret for r in ex.rows.values())}))
    for page in ex.cis.values():
        put(f"{PAGES}/{page.file}", ex.page("cmdb/export/ci.html", page.path, {"ci": page}))
    put(f"{PAGES}/artifacts.html", ex.page("cmdb/export/artifacts.html", None, {
        "rows": sorted(ex.rows.values(), key=lambda r: r.path)}))
    for name, data in _blobs(ex, ex.images):
        put(f"{PAGES}/{name}", data)


def _blobs(ex: _Export, wanted: dict[str, TreeEntry]) -> Iterable[tuple[str, bytes]]:
    by_sha = defaultdict(list)
    for name, entry in wanted.items():
        by_sha[entry.sha].append(name)
    for sha, content in ex.repo.iter_blobs(by_sha):
        for name in by_sha[sha]:
            yield name, content


# --- serving it ------------------------------------------------------------------------------------------
class ExportThrottle(UserRateThrottle):
    """``CMDB_EXPORT_RATE`` exports per person, on the UI and the API together (one cache key)."""

    scope = "export"

    def get_rate(self) -> str | None:
        # Read per request, not at import: the setting may change under tests and reloads.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


def export_response(rev: str | None) -> FileResponse:
    """The export as a download. Built into a temporary file first (an export of a large repository
    does not fit in memory and must not be half-sent when it fails), then streamed from it."""
    tmp = tempfile.TemporaryFile(prefix="cmdb-export-")  # noqa: SIM115 - FileResponse closes it
    try:
        info = write_export(rev, tmp)
    except BaseException:
        tmp.close()
        raise
    tmp.seek(0)
    return FileResponse(tmp, as_attachment=True, filename=f"{info.folder}.zip", content_type="application/zip")
