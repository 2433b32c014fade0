"""The one module that speaks Git (GitPython plus ``git`` processes it starts).

Everything else in the project calls these functions and receives plain dataclasses, or one of the
errors defined here. The portal's clone is bare: a sync fetches origin and moves the local branch
to ``origin/<branch>`` with ``update-ref`` (a hard reset that survives force-pushes); content is read
straight from the object database, at any revision, without a work tree.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar, cast

import git
from git.exc import GitCommandError, InvalidGitRepositoryError, NoSuchPathError

from cmdb.gitparse import FIELD, LOG_FORMAT, decode, parse_log, parse_ls_tree, split_patch
from cmdb.gittypes import (
    ChangedPath,
    CommitInfo,
    CommitRefs,
    FileDiff,
    GitError,
    MergeConflict,
    MergedText,
    PushRejected,
    RepositoryUnavailable,
    Revert,
    TagRef,
    TreeEntry,
    UnknownRevision,
)

__all__ = [
    "ChangedPath",
    "CommitInfo",
    "CommitRefs",
    "ConfigRepo",
    "EMPTY_TREE",
    "FileDiff",
    "GitError",
    "MergeConflict",
    "MergedText",
    "PushRejected",
    "RepositoryUnavailable",
    "Revert",
    "TagRef",
    "TreeEntry",
    "UnknownRevision",
    "validate_rev",
]

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
# Revisions users may type: branch, tag, sha, HEAD~2, main^... but never an option or a range.
_HEX_RE = re.compile(r"^[0-9a-fA-F]{4,64}$")
_REV_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/~^@{}+-]{0,199}$")
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}


def _author_env(author: tuple[str, str]) -> dict[str, str]:
    name, email = author
    return {**_base_env(), "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email}


def validate_rev(rev: str) -> str:
    """Refuse anything that could be read as an option, a range or a path."""
    if not rev or not _REV_RE.match(rev) or ".." in rev or rev.endswith(".lock"):
        raise UnknownRevision(f"Unknown revision {rev[:80]!r}.")
    return rev


def _plain_path(path: str) -> bool:
    """A relative path with no empty, ".", ".." or ".git" part: safe to write into a tree."""
    parts = path.split("/")
    return "\0" not in path and not any(p in ("", ".", "..") or p.lower() == ".git" for p in parts)


# Answers that depend on the refs only (where a branch points, the branches and tags), per process:
# every page asks them (the revision picker, the secret rule's view of main), each a ``git`` process,
# and they change only when a sync or an action moves a ref. Kept while the refs' fingerprint is the
# same and for at most REFS_MEMO_SECONDS, which bounds staleness on a file system whose timestamps
# are too coarse to see two ref updates in one tick.
REFS_MEMO_SECONDS = 5.0
_REFS_MEMO_SIZE = 512
_refs_memo: dict[tuple, tuple[tuple, float, object]] = {}
T = TypeVar("T")


class ConfigRepo:
    """A bare clone of the configuration repository, in the portal's data directory."""

    def __init__(self, path: Path, *, timeout: int = 120):
        self.path = Path(path)
        self.timeout = timeout
        try:
            self._repo = git.Repo(self.path)
        except (InvalidGitRepositoryError, NoSuchPathError) as exc:
            raise RepositoryUnavailable(f"No repository clone at {self.path}.") from exc

    # --- set-up and sync -------------------------------------------------------------------------------
    @classmethod
    def open_or_clone(cls, path: Path, url: str, *, timeout: int = 120) -> ConfigRepo:
        """Open the clone at ``path``, creating it (bare, no fetch yet) with ``url`` as origin."""
        path = Path(path)
        if not url:
            raise RepositoryUnavailable("No origin repository configured (set CMDB_REPO_URL).")
        if not (path / "HEAD").exists():
            # Built aside and renamed into place: two processes creating the clone at once (two web
            # workers on a fresh deployment) must not both write into one directory.
            path.parent.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
            try:
                repo = git.Repo.init(scratch, bare=True)
                repo.create_remote("origin", url)
                repo.close()
                os.rename(scratch, path)  # atomic; refused when another process won the race
            except OSError as exc:
                if not (path / "HEAD").exists():
                    raise RepositoryUnavailable(f"Cannot create the clone at {path} ({exc.strerror}); "
                                                "if the folder holds something else, move it away.") from exc
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        this = cls(path, timeout=timeout)
        origin = this._repo.remote("origin")
        if origin.url != url:
            origin.set_url(url)
        return this

    def _run(self, *args: str, input: bytes | None = None) -> bytes:
        cmd = ["git", "-C", str(self.path), "-c", "core.quotepath=off", *args]
        try:
            result = subprocess.run(cmd, input=input, capture_output=True, timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise GitError(f"git {args[0]} timed out after {self.timeout}s.") from exc
        if result.returncode != 0:
            message = decode(result.stderr).strip().splitlines()
            raise GitError(f"git {args[0]} failed: {message[-1] if message else 'exit ' + str(result.returncode)}")
        return result.stdout

    def fetch(self, branch: str) -> str:
        """Fetch every branch and tag from origin (pruning, forced) and return origin's ``branch`` sha."""
        try:
            self._repo.git.fetch("--prune", "--force", "--no-tags", "origin", "+refs/heads/*:refs/remotes/origin/*",
                                 "+refs/tags/*:refs/tags/*", kill_after_timeout=self.timeout)
        except GitCommandError as exc:
            detail = decode(exc.stderr.encode() if isinstance(exc.stderr, str) else exc.stderr or b"").strip()
            raise RepositoryUnavailable(f"Cannot fetch from origin: {detail or exc}") from exc
        try:
            return self.origin_head(branch)
        except UnknownRevision:
            raise RepositoryUnavailable(f"Origin has no branch {branch!r}.") from None

    def reset_branch(self, branch: str, sha: str) -> None:
        """Point the local ``branch`` (and HEAD) at ``sha`` whatever it was: a hard reset for a bare clone."""
        self._run("update-ref", f"refs/heads/{branch}", sha)
        self._run("symbolic-ref", "HEAD", f"refs/heads/{branch}")

    # --- what the refs say, remembered while they stay the same ------------------------------------------
    def refs_state(self) -> tuple:
        """An opaque token that changes whenever a ref of the clone is created, moved or deleted.

        Git writes a ref as ``<name>.lock`` renamed over ``<name>`` (a loose ref) or rewrites
        ``packed-refs`` the same way, so the directories' change times and the files' inode and
        times say it all, for a few ``stat`` calls instead of a process.
        """
        state: list[tuple] = []
        for name in ("HEAD", "FETCH_HEAD", "packed-refs"):
            try:
                st = os.stat(self.path / name)
                state.append((name, st.st_ino, st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                state.append((name,))
        for root, _dirs, _files in os.walk(self.path / "refs"):
            st = os.stat(root)
            state.append((root, st.st_ino, st.st_mtime_ns))
        return tuple(state)

    def while_refs_unchanged(self, key: tuple, compute: Callable[[], T]) -> T:
        """``compute()``, or what it returned for ``key`` in this process while the refs have not moved
        (see REFS_MEMO_SECONDS). For answers that depend on the refs and on nothing else; errors are
        never remembered."""
        state, now, slot = self.refs_state(), time.monotonic(), (str(self.path), *key)
        hit = _refs_memo.get(slot)
        if hit is not None and hit[0] == state and now - hit[1] < REFS_MEMO_SECONDS:
            return cast(T, hit[2])
        value = compute()
        if len(_refs_memo) >= _REFS_MEMO_SIZE:
            _refs_memo.clear()
        _refs_memo[slot] = (state, now, value)
        return value

    # --- revisions -------------------------------------------------------------------------------------
    @staticmethod
    def origin_ref(branch: str) -> str:
        """The clone's ref for origin's ``branch`` (the only place that knows the remote-ref layout)."""
        return f"refs/remotes/origin/{branch}"

    def origin_head(self, branch: str) -> str:
        """The head of origin's ``branch`` as of the last fetch, or UnknownRevision."""
        validate_rev(branch)
        return self._rev_parse(self.origin_ref(branch), branch)

    def resolve(self, rev: str) -> str:
        """The full sha of the commit ``rev`` names, or UnknownRevision: the one revision resolver.

        Accepts a sha (full or abbreviated), a tag, the clone's branch, any branch on origin by its
        plain name (``feature/x``), ``origin/<branch>`` and Git's suffixes (``main~2``). A tree or
        blob id is not a commit: UnknownRevision.
        """
        validate_rev(rev)
        try:
            return self._rev_parse(rev, rev)
        except UnknownRevision:
            return self._rev_parse(self.origin_ref(rev), rev)

    def _rev_parse(self, ref: str, asked: str) -> str:
        # A commit that exists stays there, and a name moves only with the refs: found shas are
        # remembered; "unknown" never is (a fetch may bring the commit without a ref of its own moving).
        return self.while_refs_unchanged(("rev-parse", ref, asked), lambda: self._rev_parse_now(ref, asked))

    def _rev_parse_now(self, ref: str, asked: str) -> str:
        try:
            out = self._run("rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
        except GitError:
            raise UnknownRevision(f"Unknown revision {asked[:80]!r}.") from None
        sha = out.decode().strip()
        if not _SHA_RE.match(sha):
            raise UnknownRevision(f"Unknown revision {asked[:80]!r}.")
        return sha

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        cmd = ["git", "-C", str(self.path), "merge-base", "--is-ancestor", ancestor, descendant]
        return subprocess.run(cmd, capture_output=True, timeout=self.timeout, check=False).returncode == 0

    def merge_base(self, a: str, b: str) -> str | None:
        """The best common ancestor of two commits, or None when their histories are unrelated."""
        cmd = ["git", "-C", str(self.path), "merge-base", a, b]
        result = subprocess.run(cmd, capture_output=True, timeout=self.timeout, check=False)
        return result.stdout.decode().strip() or None if result.returncode == 0 else None

    def rev_list(self, spec: str, *, first_parent: bool = False, limit: int = 1000) -> list[str]:
        """Commit shas of ``spec`` (e.g. ``A..B``), newest first."""
        args = ["rev-list", f"--max-count={limit}"]
        if first_parent:
            args.append("--first-parent")
        return self._run(*args, spec).decode().split()

    def merge(self, target: str, source: str, *, message: str, author: tuple[str, str]) -> tuple[str, bool]:
        """Merge commit ``source`` into commit ``target`` without a work tree.

        Returns (new sha, fast_forward). A fast-forward when ``target`` is an ancestor of ``source``;
        otherwise a merge commit made with ``merge-tree --write-tree``. Raises MergeConflict.
        """
        if self.is_ancestor(target, source):
            return source, True
        return self._three_way(target, source, parents=(target, source), message=message, author=author,
                               conflict="The branch conflicts with main in: "), False

    def revert(self, onto: str, release: Sequence[str], *, message: str, author: tuple[str, str]) -> Revert:
        """A commit on ``onto`` undoing one release (``release``: every commit it brought to main, a
        fast-forward's or a merge commit and its branch's), without a work tree. MergeConflict (naming
        the paths) when ``onto`` changed the same lines since; GitError when the release is not in it."""
        inside = set(release)
        lines = self._run("rev-list", "--no-walk", "--parents", *inside).decode().splitlines() if inside else []
        # Main before the release: the parent outside it that every other such one (a fork point) precedes.
        heads = self._run("merge-base", "--independent", *inside).decode().split() if inside else []
        outside = {p for line in lines for p in line.split()[1:]} - inside
        bases = self._run("merge-base", "--independent", *outside).decode().split() if outside else []
        if len(heads) != 1 or len(bases) != 1 or not self.is_ancestor(heads[0], onto):
            raise GitError("These commits are not one release on top of main.")
        # A throwaway commit on the release's head with main's tree from before it: merged into ``onto``
        # (their merge base is that head) it brings exactly the inverse of the release.
        undo = self._commit_tree(f"{bases[0]}^{{tree}}", (heads[0],), message, author)
        sha = self._three_way(onto, undo, parents=(onto,), message=message, author=author,
                              conflict="Main changed since the release in: ")
        return Revert(sha, heads[0], bases[0], tuple(p.path for p in self.changed_paths(onto, sha)))

    def _three_way(self, ours: str, theirs: str, *, parents: Sequence[str], message: str, author: tuple[str, str],
                   conflict: str) -> str:
        """``merge-tree --write-tree`` of two commits, committed with ``parents``; MergeConflict."""
        cmd = ["git", "-C", str(self.path), "merge-tree", "--write-tree", "--name-only", "--no-messages", ours, theirs]
        result = subprocess.run(cmd, capture_output=True, timeout=self.timeout, check=False)
        lines = decode(result.stdout).splitlines()
        if result.returncode == 1:
            raise MergeConflict(conflict + ", ".join(lines[1:]), lines[1:])
        if result.returncode != 0 or not lines:
            raise GitError(f"git merge-tree failed: {decode(result.stderr).strip()}")
        return self._commit_tree(lines[0].strip(), parents, message, author)

    def _commit_tree(self, tree: str, parents: Sequence[str], message: str, author: tuple[str, str]) -> str:
        out = subprocess.run(
            ["git", "-C", str(self.path), "commit-tree", tree, *(a for p in parents for a in ("-p", p)), "-F", "-"],
            input=message.encode(), capture_output=True, timeout=self.timeout, check=False, env=_author_env(author),
        )
        if out.returncode != 0:
            raise GitError(f"git commit-tree failed: {decode(out.stderr).strip()}")
        return out.stdout.decode().strip()

    def push(self, sha: str, branch: str, *, expect: str) -> None:
        """Move origin's ``branch`` to ``sha`` only if it is still at ``expect`` (no lost updates)."""
        try:
            self._run("push", "--porcelain", f"--force-with-lease=refs/heads/{branch}:{expect}", "origin",
                      f"{sha}:refs/heads/{branch}")
        except GitError as exc:
            raise PushRejected(f"Origin refused the push to {branch}: {exc}") from exc
        self._run("update-ref", self.origin_ref(branch), sha)

    def delete_branch(self, branch: str, *, expect: str) -> None:
        """Delete origin's ``branch`` only if it is still at ``expect``."""
        try:
            self._run("push", "--porcelain", f"--force-with-lease=refs/heads/{branch}:{expect}", "origin",
                      f":refs/heads/{branch}")
        except GitError as exc:
            raise PushRejected(f"Origin refused to delete {branch}: {exc}") from exc
        self._run("update-ref", "-d", self.origin_ref(branch))

    def commit_files(self, parent: str, files: Mapping[str, tuple[bytes, str]], *, message: str,
                     author: tuple[str, str]) -> str:
        """A new commit on top of ``parent`` whose tree is ``parent``'s with ``files`` (path -> (content,
        mode "100644"/"100755")) written; no work tree, no branch moved. ``files`` may be empty (a
        commit that only records intent). Returns the new commit's sha."""
        parent = self.resolve(parent)
        env = _author_env(author)
        with tempfile.TemporaryDirectory(prefix="cmdb-index-") as tmp:
            env["GIT_INDEX_FILE"] = str(Path(tmp) / "index")

            def git(*args: str, input: bytes | None = None) -> str:
                result = subprocess.run(["git", "-C", str(self.path), *args], input=input, capture_output=True,
                                        timeout=self.timeout, check=False, env=env)
                if result.returncode != 0:
                    raise GitError(f"git {args[0]} failed: {decode(result.stderr).strip()}")
                return result.stdout.decode().strip()

            git("read-tree", parent)
            for path, (content, mode) in sorted(files.items()):
                if mode not in ("100644", "100755") or not _plain_path(path):
                    raise GitError(f"Cannot write {path!r} with mode {mode!r}.")
                blob = git("hash-object", "-w", "--stdin", input=content)
                git("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}")
            tree = git("write-tree")
            return git("commit-tree", tree, "-p", parent, "-F", "-", input=message.encode())

    def tag_name_problem(self, name: str) -> str | None:
        """Why ``name`` cannot be a new tag, or None. Refused: what Git refuses as a ref name, and any
        name a revision lookup would read as something else (``HEAD``, a branch on origin or in the
        clone, ``origin/...``, ``refs/...``, hex that may be taken for a commit id, an existing ref)."""
        try:
            validate_rev(name)
        except UnknownRevision:
            return "it is not a valid tag name"
        check = subprocess.run(["git", "check-ref-format", f"refs/tags/{name}"], capture_output=True,
                               timeout=self.timeout, check=False)
        if check.returncode != 0:
            return "it is not a valid tag name"
        if name.upper().endswith("HEAD") and "/" not in name:
            return f"{name} is a name Git gives to special revisions"
        if name.startswith(("refs/", "origin/", "heads/", "tags/", "remotes/")):
            return "it would shadow another kind of ref"
        if _HEX_RE.match(name):
            return "it could be read as a commit id"
        if name in self.branches() or self._has_ref(f"refs/heads/{name}"):
            return f"{name} is a branch"
        if self._has_ref(f"refs/tags/{name}"):
            return f"a tag named {name} exists already"
        try:
            self._rev_parse(name, name)
        except UnknownRevision:
            return None
        return f"{name} already names a revision"

    def _has_ref(self, ref: str) -> bool:
        cmd = ["git", "-C", str(self.path), "show-ref", "--verify", "--quiet", ref]
        return subprocess.run(cmd, capture_output=True, timeout=self.timeout, check=False).returncode == 0

    def delete_tag(self, name: str) -> None:
        """Remove a tag from origin and from the clone (undoes ``create_tag`` when what follows fails)."""
        validate_rev(name)
        self._run("push", "origin", f":refs/tags/{name}")
        self._run("tag", "-d", name)

    def create_tag(self, name: str, sha: str, *, message: str, author: tuple[str, str]) -> None:
        """An annotated tag, created locally and pushed to origin (refused if it exists)."""
        validate_rev(name)
        env = {**_base_env(), "GIT_COMMITTER_NAME": author[0], "GIT_COMMITTER_EMAIL": author[1]}
        result = subprocess.run(
            ["git", "-C", str(self.path), "tag", "-a", name, sha, "-F", "-"],
            input=message.encode(), capture_output=True, timeout=self.timeout, check=False, env=env,
        )
        if result.returncode != 0:
            raise GitError(f"Cannot create tag {name!r}: {decode(result.stderr).strip()}")
        try:
            self._run("push", "origin", f"refs/tags/{name}:refs/tags/{name}")
        except GitError as exc:
            self._run("tag", "-d", name)
            raise PushRejected(f"Origin refused the tag {name!r}: {exc}") from exc

    def commit(self, rev: str) -> CommitInfo:
        """The commit ``rev`` names; UnknownRevision for a tree, a blob or an unknown sha."""
        try:
            found = self.log(rev, max_count=1)
        except GitError:
            found = []
        if not found or (_SHA_RE.match(rev) and found[0].sha != rev):
            raise UnknownRevision(f"Unknown revision {rev[:80]!r}.")
        return found[0]

    def branches(self) -> list[str]:
        """Branch names on origin (as of the last fetch)."""

        def ask() -> tuple[str, ...]:
            out = self._run("for-each-ref", "--format=%(refname:strip=3)", self.origin_ref(""))
            return tuple(sorted(b for b in out.decode().splitlines() if b and b != "HEAD"))

        return list(self.while_refs_unchanged(("branches",), ask))

    def tags(self) -> list[str]:
        out = self._run("for-each-ref", "--sort=-creatordate", "--format=%(refname:strip=2)", "refs/tags/")
        return [t for t in out.decode().splitlines() if t]

    def tag_refs(self) -> list[TagRef]:
        """Every tag naming a commit, newest first (tags of trees or blobs are no versions)."""
        return list(self.while_refs_unchanged(("tag-refs",), self._tag_refs_now))

    def _tag_refs_now(self) -> tuple[TagRef, ...]:
        fmt = FIELD.join(["%(refname:strip=2)", "%(objecttype)", "%(objectname)", "%(*objecttype)", "%(*objectname)",
                           "%(creatordate:unix)", "%(taggername)", "%(contents:subject)"])
        out = self._run("for-each-ref", "--sort=-creatordate", f"--format={fmt}", "refs/tags/")
        found = []
        for line in decode(out).splitlines():
            name, kind, sha, peeled_kind, peeled, ts, tagger, subject = (line.split(FIELD) + [""] * 8)[:8]
            annotated = kind == "tag"
            if (peeled_kind if annotated else kind) != "commit":
                continue
            when = datetime.fromtimestamp(int(ts), tz=UTC) if ts.isdigit() else None
            found.append(TagRef(name, peeled if annotated else sha, annotated, when, tagger, subject if annotated else ""))
        return tuple(found)

    def refs_of(self, sha: str, *, limit: int = 20) -> CommitRefs:
        """The tags and origin branches at commit ``sha``, and (up to ``limit``) origin branches containing it."""
        validate_rev(sha)
        remote, fmt = self.origin_ref(""), "--format=%(refname)"
        at = self._run("for-each-ref", fmt, f"--points-at={sha}", "refs/tags/", remote).decode().split()
        inside = self._run("for-each-ref", fmt, f"--count={limit}", f"--contains={sha}", remote).decode().split()
        return CommitRefs(tuple(r.removeprefix("refs/tags/") for r in at if r.startswith("refs/tags/")),
                          tuple(r.removeprefix(remote) for r in at if r.startswith(remote) and r != remote + "HEAD"),
                          tuple(r.removeprefix(remote) for r in inside if r != remote + "HEAD"))

    # --- trees and blobs -------------------------------------------------------------------------------
    def ls_tree(self, rev: str, path: str = "", *, recursive: bool = True,
                paths: Sequence[str] = ()) -> list[TreeEntry]:
        """Entries of the tree at ``rev`` (below ``path``, or below each of ``paths`` in one call), with
        blob sizes; paths are repository-relative."""
        sha = self.resolve(rev) if not _SHA_RE.match(rev) else rev
        args = ["ls-tree", "-l", "-z", "--full-tree"]
        if recursive:
            args.append("-r")
        args.append(sha)
        wanted = [path] if path else list(paths)
        if wanted:
            args += ["--", *(p.rstrip("/") + "/" if not recursive else p for p in wanted)]
        return list(parse_ls_tree(self._run(*args)))

    def read_blobs(self, shas: Iterable[str]) -> dict[str, bytes]:
        """Contents of many blobs through one ``git cat-file --batch`` (see ``iter_blobs``)."""
        return dict(self.iter_blobs(shas))

    def iter_blobs(self, shas: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """(sha, content) of many blobs, streamed from one ``git cat-file --batch`` whose requests
        are written by a thread while replies are read, so neither side waits on the other."""
        wanted = list(dict.fromkeys(shas))
        if not wanted:
            return
        # --buffer: git writes replies in blocks, not one flush per object (every request is sent up
        # front by the thread below, so nothing waits on a reply being flushed).
        proc = subprocess.Popen(["git", "-C", str(self.path), "cat-file", "--batch", "--buffer"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=1 << 20)
        assert proc.stdin is not None and proc.stdout is not None
        stdin, stdout = proc.stdin, proc.stdout

        def feed() -> None:
            try:
                stdin.write("".join(f"{sha}\n" for sha in wanted).encode())
                stdin.close()
            except BrokenPipeError:  # pragma: no cover - git died; the reader reports it
                pass

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        try:
            for sha in wanted:
                header = stdout.readline().split()
                if len(header) == 2 and header[1] == b"missing":
                    continue
                if len(header) != 3:
                    raise GitError(f"Unexpected reply from git cat-file for {sha}.")
                data = stdout.read(int(header[2]))
                stdout.read(1)
                yield sha, data
        finally:
            writer.join(timeout=self.timeout)
            stdout.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=self.timeout)

    def merge_file(self, base: bytes, ours: bytes, theirs: bytes, *,
                   labels: tuple[str, str, str] = ("ours", "base", "theirs")) -> MergedText:
        """The edits ``base`` -> ``theirs`` applied onto ``ours`` (``git merge-file --diff3``; ``labels``
        name ours, base, theirs in the conflict markers). When one side alone changed, that side is the
        result as it is (binary content too); otherwise binary content is refused (GitError)."""
        if ours in (base, theirs):
            return MergedText(theirs, 0)
        if theirs == base:
            return MergedText(ours, 0)
        if any(b"\0" in data[:8000] for data in (base, ours, theirs)):  # Git's own binary test
            raise GitError("Binary content cannot be merged line by line.")
        with tempfile.TemporaryDirectory(prefix="cmdb-merge-") as tmp:
            files = [Path(tmp) / name for name in ("ours", "base", "theirs")]
            for path, data in zip(files, (ours, base, theirs), strict=True):
                path.write_bytes(data)
            cmd = ["git", "-C", str(self.path), "merge-file", "-p", "--diff3",
                   *(arg for label in labels for arg in ("-L", label)), *map(str, files)]
            try:
                result = subprocess.run(cmd, capture_output=True, timeout=self.timeout, check=False, env=_base_env())
            except subprocess.TimeoutExpired as exc:
                raise GitError(f"git merge-file timed out after {self.timeout}s.") from exc
        if not 0 <= result.returncode < 128:  # the count of conflicts, or a negative status on failure
            raise GitError(f"git merge-file failed: {decode(result.stderr).strip() or result.returncode}")
        return MergedText(result.stdout, result.returncode)

    def read_blob(self, sha: str) -> bytes:
        return self._run("cat-file", "blob", sha)

    def entry(self, rev: str, path: str) -> TreeEntry | None:
        """The tree entry at ``path`` in ``rev``, or None if there is none."""
        sha = self.resolve(rev) if not _SHA_RE.match(rev) else rev
        out = self._run("ls-tree", "-l", "-z", "--full-tree", sha, "--", path)
        return next((e for e in parse_ls_tree(out) if e.path == path), None)

    # --- history ---------------------------------------------------------------------------------------
    def log(self, rev: str, *, paths: Iterable[str] = (), max_count: int = 50, skip: int = 0) -> list[CommitInfo]:
        """Commits reachable from ``rev`` (touching ``paths`` when given), newest first."""
        sha = self.resolve(rev) if not _SHA_RE.match(rev) else rev
        args = ["log", LOG_FORMAT, f"--max-count={max_count}", f"--skip={skip}", sha, "--", *paths]
        return [info for info, _ in parse_log(self._run(*args), with_names=False)]

    def log_with_paths(self, rev: str, *, since: str | None = None) -> Iterator[tuple[CommitInfo, list[str]]]:
        """Every commit in ``since..rev`` (or all of ``rev``), newest first, with the paths it changed."""
        target = f"{since}..{rev}" if since else rev
        raw = self._run("log", LOG_FORMAT, "--name-only", "-z", "--no-renames", target)
        yield from parse_log(raw, with_names=True)

    def changed_paths(self, old: str, new: str) -> list[ChangedPath]:
        """Files that differ between two commits (no rename detection: a rename is a delete and an add)."""
        raw = self._run("diff-tree", "-r", "-z", "--no-renames", "--name-status", old, new)
        parts = raw.split(b"\0")
        changes = []
        for i in range(0, len(parts) - 1, 2):
            status = parts[i].decode().strip()
            if status:
                changes.append(ChangedPath(status[0], decode(parts[i + 1])))
        return changes

    def diff(self, old: str | None, new: str, *, paths: Iterable[str] = ()) -> list[FileDiff]:
        """Per-file unified diffs from ``old`` (the empty tree when None) to ``new``."""
        base = old or EMPTY_TREE
        raw = self._run("diff", "--no-color", "--no-ext-diff", "--no-renames", "-U3", base, new, "--", *paths)
        return list(split_patch(decode(raw)))

    def commit_diff(self, sha: str, *, paths: Iterable[str] = ()) -> list[FileDiff]:
        """What one commit changed (against its first parent)."""
        info = self.commit(sha)
        return self.diff(info.parents[0] if info.parents else None, info.sha, paths=paths)
