"""The one module that talks to outside systems for notifications: each preset's body, the HMAC
signature of the generic webhook, the HTTP POST (urllib, a timeout, no redirects) and the mail.

Error messages never carry a target's URL: incoming-webhook URLs hold their token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import urllib.error
import urllib.request
from html import escape
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.core.mail import send_mail

SIGNATURE_HEADER = "X-CMDB-Signature"
EVENT_HEADER = "X-CMDB-Event"
DELIVERY_HEADER = "X-CMDB-Delivery"
RETRYABLE_STATUSES = {408, 425, 429}


class DeliveryFailed(Exception):
    def __init__(self, message: str, *, status: int | None = None, retry: bool = True):
        super().__init__(message)
        self.status, self.retry = status, retry


def url_problem(url: str) -> str:
    """Why ``url`` cannot be a notification target ("" when it can): http(s) only, never file: or ftp:."""
    try:
        parts = urlsplit(url or "")
        _ = parts.port  # an impossible port raises here, not when sending
    except ValueError:
        return "The URL is not a valid address."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "The URL must be an http:// or https:// address."
    if any(c.isspace() or ord(c) < 32 for c in url):
        return "The URL may not contain spaces or control characters."
    return ""


def sign(secret: str, body: bytes) -> str:
    """The value of ``X-CMDB-Signature``: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def plain_text(payload: dict) -> str:
    envs = ", ".join(payload.get("environments") or [])
    lines = [payload.get("title", "")]
    if payload.get("text"):
        lines.append(payload["text"])
    if envs:
        lines.append(f"Environments: {envs}")
    if payload.get("url"):
        lines.append(payload["url"])
    return "\n".join(lines)


def webhook_body(delivery) -> dict:
    return {"id": delivery.dedupe_key, "delivery": delivery.pk, **delivery.payload}


def slack_body(payload: dict) -> dict:
    text = f"*{payload['title']}*"
    if payload.get("text"):
        text += f"\n{payload['text']}"
    if payload.get("url"):
        text += f"\n<{payload['url']}|Open in the CM portal>"
    return {"text": text}


def mattermost_body(payload: dict) -> dict:
    text = f"**{payload['title']}**"
    if payload.get("text"):
        text += f"\n{payload['text']}"
    if payload.get("url"):
        text += f"\n[Open in the CM portal]({payload['url']})"
    return {"text": text}


def teams_body(payload: dict) -> dict:
    """A legacy MessageCard, which Teams' incoming webhooks and workflow webhooks both accept."""
    card: dict = {"@type": "MessageCard", "@context": "https://schema.org/extensions", "summary": payload["title"],
                  "title": payload["title"], "text": payload.get("text") or payload["title"]}
    if payload.get("environments"):
        card["sections"] = [{"facts": [{"name": "Environments", "value": ", ".join(payload["environments"])}]}]
    if payload.get("url"):
        card["potentialAction"] = [{"@type": "OpenUri", "name": "Open in the CM portal",
                                    "targets": [{"os": "default", "uri": payload["url"]}]}]
    return card


def matrix_body(payload: dict) -> dict:
    html = f"<strong>{escape(payload['title'])}</strong>"
    if payload.get("text"):
        html += "<br>" + escape(payload["text"]).replace("\n", "<br>")
    if payload.get("url"):
        html += f'<br><a href="{escape(payload["url"])}">Open in the CM portal</a>'
    return {"msgtype": "m.text", "body": plain_text(payload), "format": "org.matrix.custom.html",
            "formatted_body": html}


def matrix_url(target, delivery) -> str:
    # The transaction id is derived from the dedupe key: Matrix itself ignores a repeated send.
    txn = hashlib.sha256(f"{delivery.pk}:{delivery.dedupe_key}".encode()).hexdigest()[:32]
    return (f"{target.url.rstrip('/')}/_matrix/client/v3/rooms/{quote(target.room, safe='')}"
            f"/send/m.room.message/{txn}")


def request_for(target, delivery) -> tuple[str, str, bytes, dict[str, str]]:
    """(method, url, body, headers) of one delivery; the generic webhook's body is what is signed."""
    kind, payload = target.kind, delivery.payload
    headers = {"Content-Type": "application/json", "User-Agent": "cm-portal-notifications",
               EVENT_HEADER: delivery.event, DELIVERY_HEADER: delivery.dedupe_key}
    if kind == "webhook":
        body = json.dumps(webhook_body(delivery), sort_keys=True).encode()
        headers[SIGNATURE_HEADER] = sign(target.secret, body)
        return "POST", target.url, body, headers
    if kind == "matrix":
        headers["Authorization"] = f"Bearer {target.secret}"
        return "PUT", matrix_url(target, delivery), json.dumps(matrix_body(payload)).encode(), headers
    build = {"slack": slack_body, "mattermost": mattermost_body, "teams": teams_body}[kind]
    return "POST", target.url, json.dumps(build(payload)).encode(), headers


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a delivery: following it would resend the body somewhere else."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def post(method: str, url: str, body: bytes, headers: dict[str, str]) -> int:
    problem = url_problem(url)
    if problem:
        raise DeliveryFailed(problem, retry=False)
    request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310 - checked above
    try:
        with _opener.open(request, timeout=settings.CMDB_NOTIFY_TIMEOUT) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        exc.close()
        retry = exc.code >= 500 or exc.code in RETRYABLE_STATUSES
        raise DeliveryFailed(f"HTTP {exc.code} {exc.reason}", status=exc.code, retry=retry) from None
    except urllib.error.URLError as exc:
        raise DeliveryFailed(f"cannot reach the target: {exc.reason}") from None
    except (OSError, ValueError) as exc:  # timeouts, resets, malformed answers
        raise DeliveryFailed(f"cannot reach the target: {exc.__class__.__name__}: {exc}") from None
    if not 200 <= status < 300:
        raise DeliveryFailed(f"HTTP {status}", status=status, retry=status >= 500)
    return status


def send(target, delivery) -> int | None:
    """Deliver once; the HTTP status (None for mail). DeliveryFailed says whether to try again."""
    if target.kind == "email":
        payload = delivery.payload
        try:
            send_mail(f"[CM] {payload['title']}", plain_text(payload) + "\n", None, list(target.addresses))
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"mail: {exc}") from None
        return None
    return post(*request_for(target, delivery))
