"""``python manage.py cmdb_sync``: fetch origin and re-index now, in this process."""

from django.core.management.base import BaseCommand, CommandError

from cmdb import services


class Command(BaseCommand):
    help = "Fetch the configuration repository from origin and bring the index up to date."

    def handle(self, *args, **options):
        try:
            run = services.repo_sync(trigger="command")
        except services.SyncError as exc:
            raise CommandError(f"Sync failed (the previous index is kept): {exc}") from exc
        if run is None:
            self.stdout.write("A sync is already running; it will pick up the latest origin state.")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Indexed {run.to_sha[:10]} ({run.mode}, {run.paths_changed} paths, {run.duration_ms} ms)."
            )
        )
