"""``python manage.py demo_users``: the demo's logins, one per role (never for production use)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand

DEMO_USERS = (
    # username, groups, is_staff/superuser
    ("demo", (), True),
    ("viewer", ("viewers",), False),
    ("requester", ("requesters",), False),
    ("approver", ("approvers",), False),
    ("approver2", ("approvers",), False),
)


class Command(BaseCommand):
    help = "Create (or reset) the demo users; every one has the password given with --password."

    def add_arguments(self, parser):
        parser.add_argument("--password", default="demo")

    def handle(self, *args, password: str, **options):
        User = get_user_model()
        view_secret = Permission.objects.get(content_type__app_label="cmdb", codename="view_secret")
        for username, groups, admin in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@demo.invalid"})
            user.is_staff = user.is_superuser = admin
            user.set_password(password)
            user.save()
            user.groups.set(Group.objects.filter(name__in=groups))
            if admin:
                user.user_permissions.add(view_secret)
        self.stdout.write(f"Demo users: {', '.join(u for u, _, _ in DEMO_USERS)} (password {password!r}).")
