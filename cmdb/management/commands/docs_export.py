"""``python manage.py docs_export --rev REV --output FILE``: the offline export (see cmdb.export)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from cmdb.export import ExportError, write_export
from cmdb.gitrepo import GitError, UnknownRevision


class Command(BaseCommand):
    help = ("Write the whole repository's documentation at a revision (branch, tag, baseline or commit) as "
            "a zip of static HTML that opens from disk with no server and no network; secrets left out.")

    def add_arguments(self, parser):
        parser.add_argument("--rev", default="", help="Revision to export (default: the indexed commit).")
        parser.add_argument("--output", required=True, help="The zip file to write ('-' is refused).")

    def handle(self, *args, rev: str, output: str, **options):
        target = Path(output)
        if output == "-" or target.is_dir():
            raise CommandError(f"--output must name a file, not {output!r}.")
        # Written beside the target and renamed: a failed export never leaves half a zip under its name.
        fd, tmp = tempfile.mkstemp(prefix=".docs-export-", suffix=".zip", dir=target.parent if str(target.parent) else ".")
        try:
            with os.fdopen(fd, "wb") as out:
                info = write_export(rev.strip() or None, out)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except UnknownRevision as exc:
            raise CommandError(f"Unknown revision: {exc}") from exc
        except (GitError, ExportError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self.stdout.write(self.style.SUCCESS(
            f"Exported {info.rev} (commit {info.sha}) to {target}: {info.files} files in {info.folder}/."))
