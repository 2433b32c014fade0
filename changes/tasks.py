"""Celery tasks of change control: mail after a decision, sent once the transaction has committed.

Tasks take ids and load the rows; a mail server that is down is retried with backoff and never
fails the decision that caused the mail.
"""

from __future__ import annotations

import smtplib

from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db.models import Q

from changes import permissions
from changes.models import ChangeRequest
from portal.tasks import RETRIES, retry_later


def _send(task, subject: str, body: str, sender, recipients: list[str]) -> None:
    try:
        send_mail(subject, body, sender, recipients)
    except (smtplib.SMTPException, OSError) as exc:
        retry_later(task, exc)


@shared_task(name="changes.tasks.mail_approvers", acks_late=True, max_retries=RETRIES, bind=True)
def mail_approvers(self, change_id: int) -> None:
    """A change request was submitted: every approver (and staff) but its requester hears of it."""
    change = ChangeRequest.objects.select_related("requester").get(pk=change_id)
    users = get_user_model().objects.filter(Q(groups__name=permissions.APPROVERS) | Q(is_staff=True), is_active=True)
    recipients = sorted({u.email for u in users.exclude(pk=change.requester_id) if u.email})
    if recipients:
        _send(self,
            f"[CM] {change.reference} awaits your approval: {change.title}",
            f"{change.requester} submitted {change.reference} ({change.type}, risk {change.risk}) on branch "
            f"{change.branch}.\nEnvironments: {', '.join(change.environments()) or '-'}\n"
            f"It needs {change.required_approvals} approval(s).\n\n{_url(change)}",
            None, recipients,
        )


@shared_task(name="changes.tasks.mail_requester", acks_late=True, max_retries=RETRIES, bind=True)
def mail_requester(self, change_id: int, what: str, comment: str) -> None:
    """A decision on a change request: its requester and watchers hear of it."""
    change = ChangeRequest.objects.select_related("requester").get(pk=change_id)
    recipients = {change.requester.email} | set(change.watchers.exclude(email="").values_list("email", flat=True))
    recipients.discard("")
    if recipients:
        _send(self,
            f"[CM] {change.reference} {what}: {change.title}",
            f"{change.reference} is now {change.state}.\n{comment}\n\n{_url(change)}",
            None, sorted(recipients),
        )


def _url(change: ChangeRequest) -> str:
    base = settings.CMDB_PUBLIC_URL.rstrip("/")
    return f"{base}{change.get_absolute_url()}"
