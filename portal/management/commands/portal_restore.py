"""``manage.py portal_restore FILE``: restore a backup into an empty, migrated database; then sync."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from portal.backup import BackupError, backup_restore


class Command(BaseCommand):
    help = "Restore a portal_backup archive (all or nothing). Run a sync afterwards to rebuild the index."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--replace", action="store_true",
                            help="Delete the portal data this database holds first (in the same transaction)")

    def handle(self, *args, **options):
        try:
            manifest = backup_restore(path=options["file"], replace=options["replace"])
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Restored {sum(manifest.counts.values())} rows from a backup of {manifest.created_at}. "
                          "Now run `manage.py cmdb_sync` to rebuild the index from Git.")
