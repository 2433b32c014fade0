"""``manage.py token_create USER --name NAME [--days N]``: a personal API token for a user (e.g. a
CI account), printed once. Everyone else makes their own on the profile page (``/account/``)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts import services
from portal.errors import ServiceError


class Command(BaseCommand):
    help = "Create a personal API token for a user and print its key (shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="made with manage.py token_create")
        parser.add_argument("--days", type=int, default=0, help="Expire after this many days (0: never)")

    def handle(self, *args, username: str, name: str, days: int, **options):
        owner = get_user_model().objects.filter(username=username).first()
        if owner is None:
            raise CommandError(f"No user named {username!r}.")
        if days < 0:
            raise CommandError("--days must be 0 (never) or more.")
        expires_at = timezone.now() + timedelta(days=days) if days else None
        try:
            # The command is run by an administrator of the host: the token is recorded as made by its owner.
            made = services.token_create(acting_user=owner, owner=owner, name=name, expires_at=expires_at)
        except ServiceError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(made.key)
