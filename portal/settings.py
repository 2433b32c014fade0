"""The portal's only settings module. Everything deployment-specific comes from environment
variables (see README, "Configuration"), read through ``portal.env`` helpers that fail loudly."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from portal import sso
from portal.env import (
    database_from_url,
    env_bool,
    env_crontab,
    env_glob,
    env_int,
    env_list,
    env_path,
    env_rate,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required unless DJANGO_DEBUG=true.")
    SECRET_KEY = "insecure-debug-only-key-do-not-use-in-production"  # noqa: S105
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# --- the configuration repository ------------------------------------------------------------------
CMDB_DATA_DIR = env_path("CMDB_DATA_DIR", BASE_DIR / "data")
CMDB_REPO_URL = env_str("CMDB_REPO_URL")
CMDB_BRANCH = env_str("CMDB_BRANCH", "main")
# Tags made outside the portal that count as baselines (shell-style pattern on the tag name).
CMDB_BASELINE_TAG_PATTERN = env_glob("CMDB_BASELINE_TAG_PATTERN", "*")
CMDB_CLONE_DIR = CMDB_DATA_DIR / "repo"
CMDB_WEBHOOK_SECRET = env_str("CMDB_WEBHOOK_SECRET")
# A signed delivery is acted on once: its id and body digest are remembered this long.
CMDB_WEBHOOK_REPLAY_DAYS = env_int("CMDB_WEBHOOK_REPLAY_DAYS", 7, minimum=1)
CMDB_SYNC_INTERVAL = env_int("CMDB_SYNC_INTERVAL", 300, minimum=10)
# Files above this size are shown truncated in the browser, with a download link.
CMDB_MAX_VIEW_BYTES = env_int("CMDB_MAX_VIEW_BYTES", 1024 * 1024, minimum=1024)
# Artifacts above this size get a lint warning ("very large file").
CMDB_LARGE_FILE_BYTES = env_int("CMDB_LARGE_FILE_BYTES", 10 * 1024 * 1024, minimum=1024)
CMDB_GIT_TIMEOUT = env_int("CMDB_GIT_TIMEOUT", 120, minimum=1)
# Where the portal is reached, for links in mail (e.g. https://cm.example.org).
CMDB_PUBLIC_URL = env_str("CMDB_PUBLIC_URL", "http://localhost:8000")

# --- dry runs: read-only looks at the machines ------------------------------------------------------
# The portal's SSH identity (key authentication only, strict known_hosts); empty: no SSH machines.
CMDB_SSH_KEY = env_str("CMDB_SSH_KEY", "")
CMDB_SSH_KNOWN_HOSTS = env_str("CMDB_SSH_KNOWN_HOSTS", "")
CMDB_SSH_USER = env_str("CMDB_SSH_USER", "")
CMDB_SSH_CONNECT_TIMEOUT = env_int("CMDB_SSH_CONNECT_TIMEOUT", 10, minimum=1)
CMDB_SSH_COMMAND_TIMEOUT = env_int("CMDB_SSH_COMMAND_TIMEOUT", 60, minimum=1)
# Base of the relative ``root`` of local machines (the demo points it at its source directory).
CMDB_LOCAL_ROOT_BASE = env_path("CMDB_LOCAL_ROOT_BASE", CMDB_DATA_DIR)
# Audits: the monthly full audit (crontab in TIME_ZONE), machines per task, time limits per task.
CMDB_AUDIT_CRONTAB = env_crontab("CMDB_AUDIT_CRONTAB", "0 2 1 * *")
CMDB_AUDIT_BATCH = env_int("CMDB_AUDIT_BATCH", 250, minimum=1)
CMDB_AUDIT_SOFT_TIME_LIMIT = env_int("CMDB_AUDIT_SOFT_TIME_LIMIT", 600, minimum=10)
CMDB_AUDIT_TIME_LIMIT = env_int("CMDB_AUDIT_TIME_LIMIT", max(660, CMDB_AUDIT_SOFT_TIME_LIMIT + 60), minimum=20)
if CMDB_AUDIT_TIME_LIMIT <= CMDB_AUDIT_SOFT_TIME_LIMIT:
    raise ImproperlyConfigured("CMDB_AUDIT_TIME_LIMIT must be greater than CMDB_AUDIT_SOFT_TIME_LIMIT.")
# Status accounting (the home page's verdict): when a sync, the scheduled audit and a release's deploy
# or verification are late enough to need attention, in seconds.
CMDB_STATUS_SYNC_STALE = env_int("CMDB_STATUS_SYNC_STALE", max(3600, 3 * CMDB_SYNC_INTERVAL), minimum=60)
if CMDB_STATUS_SYNC_STALE < CMDB_SYNC_INTERVAL:
    raise ImproperlyConfigured("CMDB_STATUS_SYNC_STALE must be at least CMDB_SYNC_INTERVAL.")
CMDB_STATUS_AUDIT_GRACE = env_int("CMDB_STATUS_AUDIT_GRACE", 86400, minimum=0)
CMDB_STATUS_RELEASE_GRACE = env_int("CMDB_STATUS_RELEASE_GRACE", 3600, minimum=0)
CMDB_DRY_RUN_BATCH = env_int("CMDB_DRY_RUN_BATCH", 25, minimum=1)
# Worker processes lower their CPU priority by this nice increment (0-19; 0 keeps it): on a small
# host an audit's batches then yield the cores to the web processes' page requests (bench_load.py).
CMDB_WORKER_NICE = env_int("CMDB_WORKER_NICE", 10, minimum=0)
if CMDB_WORKER_NICE > 19:
    raise ImproperlyConfigured("CMDB_WORKER_NICE must be between 0 and 19.")
CMDB_DRY_RUN_SOFT_TIME_LIMIT = env_int("CMDB_DRY_RUN_SOFT_TIME_LIMIT", 300, minimum=10)
CMDB_DRY_RUN_TIME_LIMIT = env_int("CMDB_DRY_RUN_TIME_LIMIT", max(360, CMDB_DRY_RUN_SOFT_TIME_LIMIT + 30), minimum=20)
if CMDB_DRY_RUN_TIME_LIMIT <= CMDB_DRY_RUN_SOFT_TIME_LIMIT:
    raise ImproperlyConfigured("CMDB_DRY_RUN_TIME_LIMIT must be greater than CMDB_DRY_RUN_SOFT_TIME_LIMIT.")

# --- deploys: the only jobs that write to machines ----------------------------------------------------
# Off unless named here: the environments whose machines deploy jobs may write (from the portal's
# environment, never from the repository, so a commit cannot enable writes).
CMDB_DEPLOY_ENVIRONMENTS = env_list("CMDB_DEPLOY_ENVIRONMENTS", [])
CMDB_DEPLOY_SUDO = env_bool("CMDB_DEPLOY_SUDO", False)  # SSH writes through `sudo -n` (a non-root deploy user)
CMDB_DEPLOY_CANARY = env_int("CMDB_DEPLOY_CANARY", 1, minimum=0)  # machines in the first batch (0: no canary)
CMDB_DEPLOY_BATCH = env_int("CMDB_DEPLOY_BATCH", 10, minimum=1)
# /metrics answers a scraper sending "Authorization: Bearer <this>"; empty: the endpoint is off.
CMDB_METRICS_TOKEN = env_str("CMDB_METRICS_TOKEN", "")
if CMDB_METRICS_TOKEN and len(CMDB_METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("CMDB_METRICS_TOKEN must be at least 16 characters (or empty: no /metrics).")
# Retention (days; 0 keeps everything, the default): job plans, job logs, per-machine audit results.
# The last CMDB_RETAIN_KEEP_LAST per machine, and whatever a finding, an unfinished change request or
# a baseline refers to, are always kept (deploys/retention.py, audits/retention.py).
CMDB_RETAIN_JOB_PLANS_DAYS = env_int("CMDB_RETAIN_JOB_PLANS_DAYS", 0, minimum=0)
CMDB_RETAIN_JOB_LOGS_DAYS = env_int("CMDB_RETAIN_JOB_LOGS_DAYS", 0, minimum=0)
CMDB_RETAIN_AUDIT_RESULTS_DAYS = env_int("CMDB_RETAIN_AUDIT_RESULTS_DAYS", 0, minimum=0)
CMDB_RETAIN_KEEP_LAST = env_int("CMDB_RETAIN_KEEP_LAST", 3, minimum=1)
# Personal API tokens must expire within this many days (0: tokens may never expire).
CMDB_API_TOKEN_MAX_DAYS = env_int("CMDB_API_TOKEN_MAX_DAYS", 0, minimum=0)
CMDB_DEPLOY_MAX_FAILURES = env_int("CMDB_DEPLOY_MAX_FAILURES", 1, minimum=1)  # failed machines that halt a rollout
CMDB_DEPLOY_TIME_LIMIT = env_int("CMDB_DEPLOY_TIME_LIMIT", 1800, minimum=60)  # per batch
# Previous files of every machine a deploy wrote, per job (sensitive: 0700).
CMDB_DEPLOY_BACKUP_DIR = env_path("CMDB_DEPLOY_BACKUP_DIR", CMDB_DATA_DIR / "deploy-backups")

# --- notifications: targets are configured by staff in the portal ----------------------------------
CMDB_NOTIFY_TIMEOUT = env_int("CMDB_NOTIFY_TIMEOUT", 10, minimum=1)  # seconds per HTTP delivery
CMDB_NOTIFY_MAX_ATTEMPTS = env_int("CMDB_NOTIFY_MAX_ATTEMPTS", 6, minimum=1)
CMDB_NOTIFY_RETRY_DELAY = env_int("CMDB_NOTIFY_RETRY_DELAY", 30, minimum=1)  # first retry; doubles each time

try:
    CMDB_DATA_DIR.mkdir(parents=True, exist_ok=True)
except OSError as exc:  # pragma: no cover - depends on the host
    raise ImproperlyConfigured(f"CMDB_DATA_DIR={CMDB_DATA_DIR} cannot be created: {exc}") from exc

# --- Django --------------------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_celery_results",
    "django_celery_beat",
    "axes",
    "csp",
    "portal",  # the composition root: its management commands (backup, restore)
    "cmdb",
    "changes",
    "audits",
    "deploys",
    "accounts",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "portal.middleware.RefusalMiddleware",  # a ServiceError from a view -> the refusal page
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses logins while an account or address is locked out
    "django.contrib.auth.backends.ModelBackend",  # local accounts: always, for break-glass staff
]
# --- single sign-on (portal/sso.py): each backend only when configured ------------------------------
# The libraries' own settings (AUTH_LDAP_*, OIDC_*) are set only when their method is configured.
_LDAP = sso.ldap_settings()
CMDB_LDAP_ROLE_MAP: sso.RoleMap | None = _LDAP.pop("CMDB_LDAP_ROLE_MAP", None)
if _LDAP:
    globals().update(_LDAP)
    AUTHENTICATION_BACKENDS.append("portal.auth_ldap.DirectoryBackend")
_OIDC = sso.oidc_settings()
CMDB_OIDC_ROLE_MAP: sso.RoleMap | None = _OIDC.pop("CMDB_OIDC_ROLE_MAP", None)
CMDB_OIDC_PROVIDER_NAME: str = _OIDC.pop("CMDB_OIDC_PROVIDER_NAME", "")
CMDB_OIDC_USERNAME_CLAIM: str = _OIDC.pop("CMDB_OIDC_USERNAME_CLAIM", "preferred_username")
CMDB_OIDC_GROUPS_CLAIM: str = _OIDC.pop("CMDB_OIDC_GROUPS_CLAIM", "groups")
if _OIDC:
    globals().update(_OIDC)
    AUTHENTICATION_BACKENDS.append("portal.auth_oidc.ProviderBackend")

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "cmdb.context_processors.repository",
            ],
        },
    }
]

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": CMDB_DATA_DIR / "portal.sqlite3",
            # A sync holds a write transaction while it indexes; readers and a second writer wait
            # for it instead of failing with "database is locked".
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"

# --- failed logins (django-axes): per account and, separately, per client address -------------------
AXES_FAILURE_LIMIT = env_int("CMDB_LOGIN_FAILURE_LIMIT", 5, minimum=1)
CMDB_LOGIN_COOLOFF_MINUTES = env_int("CMDB_LOGIN_COOLOFF_MINUTES", 15, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=CMDB_LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # one log line per lockout is enough; not a banner at every start
AXES_LOCKOUT_CALLABLE = "portal.auth.locked_out"
# The client address is REMOTE_ADDR unless the portal is told how many proxies sit in front of it:
# otherwise anyone could pick an X-Forwarded-For per attempt and never be locked out.
CMDB_TRUSTED_PROXY_COUNT = env_int("CMDB_TRUSTED_PROXY_COUNT", 0, minimum=0)
AXES_IPWARE_META_PRECEDENCE_ORDER: tuple[str, ...] = ("REMOTE_ADDR",)
if CMDB_TRUSTED_PROXY_COUNT:
    AXES_IPWARE_PROXY_COUNT = CMDB_TRUSTED_PROXY_COUNT
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = CMDB_DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns on every start without it
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/bootstrap", BASE_DIR / "node_modules" / "bootstrap" / "dist"),
    ("vendor/bootstrap-icons", BASE_DIR / "node_modules" / "bootstrap-icons" / "font"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# HTTPS: off by default (the demo and a plain-HTTP test install); the compose file's production
# example turns them on. Behind a TLS-terminating proxy, DJANGO_SECURE_PROXY_SSL_HEADER=true trusts its
# X-Forwarded-Proto (only set it when the proxy always overwrites that header).
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", SECURE_HSTS_SECONDS > 0)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
# Preloading is a commitment browsers keep for months, an operator's decision for the whole domain:
# opt-in, so its absence is not reported as a deployment problem.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# One strict policy for every page: nothing inline, nothing from elsewhere. The API docs pages relax
# style-src for themselves only (portal/api_urls.py); /raw/ sets a stricter one of its own.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}
SECURE_REFERRER_POLICY = "same-origin"

EMAIL_BACKEND = env_str("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DJANGO_DEFAULT_FROM_EMAIL", "cm-portal@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO")},
    # asyncssh logs several lines per connection: a fleet-wide run would flood the log.
    "loggers": {"asyncssh": {"level": "WARNING"}, "axes": {"level": "WARNING"},
                # django-auth-ldap logs every lookup at DEBUG; failures reach portal.auth_ldap's warnings.
                "django_auth_ldap": {"level": "WARNING"}},
}

# --- REST API ----------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.throttling.ThrottledTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["portal.throttling.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "portal.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # Anonymous callers and callers with a wrong token per address, signed-in callers per user;
    # answered 429 with Retry-After (portal.throttling).
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_rate("CMDB_API_RATE_ANON", "60/min"),
        "user": env_rate("CMDB_API_RATE_USER", "1200/min"),
        "failed_token": env_rate("CMDB_API_RATE_FAILED_TOKEN", "20/min"),
        # Each offline export reads every file of the repository: a few per hour per person (UI and API).
        "export": env_rate("CMDB_EXPORT_RATE", "10/hour"),
    },
    "NUM_PROXIES": CMDB_TRUSTED_PROXY_COUNT or None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CM portal API",
    "DESCRIPTION": "Configuration items at any revision, lint, search and sync of the configuration "
    "repository; change requests, votes, releases, baselines and the change record; dry runs; audits, "
    "findings, manual checks and the status verdict with its reasons and figures.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Offline docs: no badge that asks validator.swagger.io about the schema. No deep links: Swagger UI puts
    # each one inside its operation's toggle button, a control inside a control for screen readers (axe).
    "SWAGGER_UI_SETTINGS": {"deepLinking": False, "validatorUrl": None},
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ChangeStateEnum": "changes.models.ChangeRequest.State",
        "ChangeTypeEnum": "changes.models.ChangeRequest.Type",
        "RevertTypeEnum": [("normal", "normal"), ("emergency", "emergency")],
        "JobStateEnum": "deploys.models.Job.State",
        "JobKindEnum": "deploys.models.Job.Kind",
        "MachinePlanStatusEnum": "deploys.models.MachinePlan.Status",
        "AuditRunStateEnum": "audits.models.AuditRun.State",
        "MachineResultStatusEnum": "audits.models.MachineResult.Status",
        "FindingStateEnum": "audits.models.Finding.State",
        "FindingKindEnum": "audits.models.Finding.Kind",
        "ConfigItemKindEnum": "cmdb.models.ConfigItem.Kind",
        "ManualCheckStateEnum": "audits.models.ManualCheck.State",
        "SeverityEnum": "cmdb.models.LintWarning.Severity",
        "VerdictEnum": [("ok", "ok"), ("attention", "attention"), ("failing", "failing")],
        "ReasonSeverityEnum": [("attention", "attention"), ("failing", "failing")],
    },
}

# --- Celery --------------------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
CMDB_BROKER_VISIBILITY_TIMEOUT = env_int("CMDB_BROKER_VISIBILITY_TIMEOUT", 60, minimum=5)
# The cache holds the API throttles' counters: it must be shared by every web process. Redis when
# there is one; otherwise files in the data directory (one host, no server: the demo).
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                          "LOCATION": str(CMDB_DATA_DIR / "cache")}}
CELERY_QUEUE_DIR = CMDB_DATA_DIR / "queue"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # A message a worker took but did not acknowledge (the worker was killed) goes back to the queue
    # after this many seconds, for another worker: kombu's default is an hour. A batch that runs longer
    # is delivered a second time while it runs; that costs a second look, never a second result (a
    # batch skips what is stored, and results are unique per run and machine). A killed worker
    # *process* is noticed at once by its parent (reject_on_worker_lost) and its batch requeued.
    # Running workers look for such messages every 10 s (kombu: every 100 s by default).
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"visibility_timeout": CMDB_BROKER_VISIBILITY_TIMEOUT,
                                             "unacked_restore_interval": 10, "unacked_restore_throttle": 1}
else:
    # Embedded queue: no server at all, messages are files under the data directory.
    CELERY_BROKER_URL = "filesystem://"
    for sub in ("messages", "processed", "control"):
        (CELERY_QUEUE_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_QUEUE_DIR / "messages"),
        "data_folder_out": str(CELERY_QUEUE_DIR / "messages"),
        "processed_folder": str(CELERY_QUEUE_DIR / "processed"),
        "control_folder": str(CELERY_QUEUE_DIR / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "cmdb-periodic-sync": {
        "task": "cmdb.tasks.sync_repository",
        "schedule": float(CMDB_SYNC_INTERVAL),
        "kwargs": {"trigger": "periodic"},
    },
    "changes-dry-run-reap": {
        "task": "changes.tasks.dryrun_reap",
        "schedule": 300.0,
    },
    "audits-monthly": {
        "task": "audits.tasks.audit_scheduled",
        "schedule": crontab(**CMDB_AUDIT_CRONTAB),
    },
    "audits-reap": {
        "task": "audits.tasks.audit_reap",
        "schedule": 300.0,
    },
    "deploys-retention": {"task": "deploys.tasks.jobs_prune", "schedule": crontab(hour="3", minute="40")},
    "audits-retention": {"task": "audits.tasks.results_prune", "schedule": crontab(hour="3", minute="50")},
    # Daily; the event's key is the month, so targets hear of overdue checks once a month.
    "notifications-checks-overdue": {
        "task": "notifications.tasks.checks_overdue",
        "schedule": crontab(minute="0", hour="8"),
    },
}
