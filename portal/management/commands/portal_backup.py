"""``manage.py portal_backup FILE``: everything the portal's database holds that Git does not."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from portal.backup import backup_write


class Command(BaseCommand):
    help = "Write a backup archive of the portal's database (change control, audits, users, tokens)."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="The archive to write (gzipped JSON, mode 0600)")

    def handle(self, *args, **options):
        manifest = backup_write(path=options["file"])
        rows = sum(manifest.counts.values())
        self.stdout.write(f"Wrote {options['file']}: {rows} rows of {len(manifest.counts)} models "
                          f"(index at {manifest.indexed_commit[:10] or 'nothing'}).")
