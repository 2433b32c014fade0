"""Reading settings from the environment, failing loudly on values that cannot be right.

Every helper raises ``ImproperlyConfigured`` naming the variable, so a typo in a deployment
stops the process at start-up instead of surfacing as odd behaviour later.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str:
    value = os.environ.get(name)
    if value is None or value == "":
        if required:
            raise ImproperlyConfigured(f"The environment variable {name} is required.")
        return default if default is not None else ""
    return value


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true or false).")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_path(name: str, default: Path) -> Path:
    raw = os.environ.get(name)
    path = Path(raw).expanduser() if raw else default
    return path.resolve()


CRONTAB_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


def env_crontab(name: str, default: str) -> dict[str, str]:
    """A five-field crontab ("minute hour day-of-month month day-of-week"), as celery.schedules.crontab
    keyword arguments; every field is checked by Celery's own parser."""
    from celery.schedules import ParseException, crontab

    raw = os.environ.get(name) or default
    fields = raw.split()
    if len(fields) != 5:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a crontab: five fields, e.g. '0 2 1 * *'.")
    spec = dict(zip(CRONTAB_FIELDS, fields, strict=True))
    try:
        schedule = crontab(**spec)
        # crontab parses lazily on some fields: touching each set makes a bad value fail here.
        _ = (schedule.minute, schedule.hour, schedule.day_of_month, schedule.month_of_year, schedule.day_of_week)
    except (ParseException, ValueError) as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a valid crontab: {exc}") from None
    return spec


def database_from_url(url: str) -> dict:
    """Turn ``postgres://user:pass@host:port/name`` into a Django DATABASES entry."""
    from urllib.parse import parse_qs, unquote, urlparse

    parsed = urlparse(url)
    if parsed.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(
            f"DATABASE_URL scheme {parsed.scheme!r} is not supported; use postgres://user:pass@host:port/db."
        )
    name = parsed.path.lstrip("/")
    if not name:
        raise ImproperlyConfigured("DATABASE_URL names no database (postgres://…/<name>).")
    options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(name),
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": parsed.hostname or "",
        "PORT": str(parsed.port or ""),
        "OPTIONS": options,
        "CONN_MAX_AGE": 60,
        # A connection that died (the database restarted) is noticed before a request uses it.
        "CONN_HEALTH_CHECKS": True,
    }


_RATE_RE = re.compile(r"^[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)$")


def env_rate(name: str, default: str) -> str:
    """A DRF throttle rate such as ``60/min``; a typo would otherwise surface as a 500 on the first request."""
    value = env_str(name, default)
    if not _RATE_RE.match(value):
        raise ImproperlyConfigured(f"{name}={value!r}: expected <number>/<s|min|hour|day>, e.g. 60/min.")
    return value


_GLOB_RE = re.compile(r"^[A-Za-z0-9._/*?\[\]!+@-]+$")


def env_glob(name: str, default: str) -> str:
    """A shell-style pattern for ref names (fnmatch); a character no tag name can hold means a typo."""
    value = env_str(name, default).strip()
    if not _GLOB_RE.match(value) or ".." in value or value.count("[") != value.count("]"):
        raise ImproperlyConfigured(f"{name}={value!r} is not a tag-name pattern (e.g. baseline-* or *).")
    return value
