"""Settings, read from the environment.

With nothing set, Buffet runs on embedded defaults: SQLite in WAL mode and the embedded
broker (a Valkey server that comes with the project's packages, ``portal.broker``), both
under ``var/``. Set ``DATABASE_URL`` and ``CELERY_BROKER_URL`` (and ``CACHE_URL``) to run
the same code on PostgreSQL and Redis.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url

from portal import broker

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("BUFFET_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def _secret_key() -> str:
    if key := os.environ.get("BUFFET_SECRET_KEY"):
        return key
    # Embedded mode: one random key per installation, kept next to the SQLite files.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# Stamp credentials are encrypted with this key (Fernet, derived if not given).
BUFFET_ENCRYPTION_KEY = os.environ.get("BUFFET_ENCRYPTION_KEY", "")
DEBUG = env_bool("BUFFET_DEBUG")
ALLOWED_HOSTS = os.environ.get("BUFFET_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")
# The provider's face (base.faces): the hosts it answers on (an internal name) and,
# optionally, the port of its own listener. With neither, one host serves both faces.
BUFFET_PROVIDER_HOSTS = [
    h.strip().lower() for h in os.environ.get("BUFFET_PROVIDER_HOSTS", "").split(",")
    if h.strip()
]
BUFFET_PROVIDER_PORT = int(os.environ.get("BUFFET_PROVIDER_PORT", "0") or 0) or None
if "*" not in ALLOWED_HOSTS:
    ALLOWED_HOSTS += [h for h in BUFFET_PROVIDER_HOSTS if h not in ALLOWED_HOSTS]
CSRF_TRUSTED_ORIGINS = [
    o for o in os.environ.get("BUFFET_CSRF_TRUSTED_ORIGINS", "").split(",") if o
]

INSTALLED_APPS = [
    "portal.admin_site.ProviderAdminConfig",  # django.contrib.admin, behind staff TOTP
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_htmx",
    "bootstrap",
    "rules.apps.AutodiscoverRulesConfig",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "portal",
    "base",
    "tenants",
    "fabric",
    "plans",
    "provisioning",
    "dr_addon",
    "billing",
]

MIDDLEWARE = [
    "base.requestid.RequestIdMiddleware",  # first: everything after it logs with the id
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "tenants.middleware.SessionLifetimeMiddleware",
    "base.faces.FaceMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "portal.metrics.MetricsMiddleware",
]

# --- Response headers and cookies ----------------------------------------------------
# Scripts come only from our own static files (htmx, bootstrap, portal.js): no inline
# script and no eval. Inline style *attributes* draw the bars; style elements are ours.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Behind TLS (BUFFET_TLS=1, in production): HSTS, secure cookies, and the proxy's word
# on the scheme (X-Forwarded-Proto, set by the TLS-terminating proxy in front).
BUFFET_TLS = env_bool("BUFFET_TLS")
if BUFFET_TLS:
    SECURE_SSL_REDIRECT = env_bool("BUFFET_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = int(os.environ.get("BUFFET_HSTS_SECONDS", 31536000))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("BUFFET_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
AUTH_USER_MODEL = "tenants.User"
AUTHENTICATION_BACKENDS = [
    # First: a locked-out account or address is refused before its password is checked.
    "axes.backends.AxesStandaloneBackend",
    "rules.permissions.ObjectPermissionBackend",
    "tenants.backends.EmailBackend",
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

# --- Logins ---------------------------------------------------------------------------
# Lockout (django-axes): this many failed logins (wrong passwords or wrong codes) lock the
# account, and BUFFET_LOGIN_ADDRESS_FAILURE_LIMIT lock the address they came from, for
# BUFFET_LOGIN_LOCKOUT_MINUTES after the last one. An unknown email counts like a known one.
BUFFET_LOGIN_FAILURE_LIMIT = int(os.environ.get("BUFFET_LOGIN_FAILURE_LIMIT", "10"))
BUFFET_LOGIN_ADDRESS_FAILURE_LIMIT = int(
    os.environ.get("BUFFET_LOGIN_ADDRESS_FAILURE_LIMIT", "50"))
BUFFET_LOGIN_LOCKOUT_MINUTES = int(os.environ.get("BUFFET_LOGIN_LOCKOUT_MINUTES", "15"))
AXES_HANDLER = "tenants.lockout.LoginAttempts"
AXES_FAILURE_LIMIT = BUFFET_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=BUFFET_LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # the account, or the address
AXES_USERNAME_CALLABLE = "tenants.lockout.attempt_username"
# The lockout ends when it says it does: a retry while locked does not prolong it.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# Not reset by a success: that would wipe the failures of every account tried from the
# same address (axes resets by account and by address), an attacker's own login included.
AXES_RESET_ON_SUCCESS = False
AXES_ENABLE_ADMIN = True
AXES_VERBOSE = False
# The address is the socket's (REMOTE_ADDR): a client cannot choose it with a header.
# The login views turn a lockout into their own answer (a problem+json in the API, the
# form's error on the web), so axes' middleware, which would replace it, is not installed.
SILENCED_SYSTEM_CHECKS = ["axes.W002"]

# Two-factor (django-otp, TOTP): staff must have a confirmed device; anyone else may.
OTP_TOTP_ISSUER = os.environ.get("BUFFET_TOTP_ISSUER", "Buffet")
# Staff tokens live hours, tenants' tokens days; both can be revoked before.
# The one currency of every price and invoice (billing).
BUFFET_CURRENCY = os.environ.get("BUFFET_CURRENCY", "USD")

BUFFET_TOKEN_TTL_DAYS = int(os.environ.get("BUFFET_TOKEN_TTL_DAYS", "90"))
BUFFET_STAFF_TOKEN_TTL_HOURS = int(os.environ.get("BUFFET_STAFF_TOKEN_TTL_HOURS", "12"))

# Sessions: they end this long after the login whatever happens, or after this long
# without a request; their owner sees and ends them on /account/sessions/.
SESSION_COOKIE_AGE = int(os.environ.get("BUFFET_SESSION_HOURS", "12")) * 3600
BUFFET_SESSION_IDLE_MINUTES = int(os.environ.get("BUFFET_SESSION_IDLE_MINUTES", "60"))
# (Their cookies' flags: "Response headers and cookies" above.)

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "portal" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'buffet.sqlite3'}"),
        conn_max_age=int(os.environ.get("BUFFET_DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers and one writer work side by side; IMMEDIATE takes the write lock
    # at BEGIN so two writers queue on the busy timeout instead of failing on upgrade. A
    # connection is kept as on PostgreSQL (between requests it holds no transaction, so
    # it blocks neither writers nor checkpoints); opening one and running its PRAGMAs
    # cost a request more than its statements.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
        "PRAGMA foreign_keys=ON;",
    }
    DATABASES["default"]["TEST"] = {
        "NAME": str(VAR_DIR / "test_buffet.sqlite3"),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (throttling) ---------------------------------------------------------------
CACHE_URL = os.environ.get("CACHE_URL", "")
if CACHE_URL.startswith("redis"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": CACHE_URL, "KEY_PREFIX": "buffet"}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ---------------------------------------------------------------------------
# Without CELERY_BROKER_URL, the embedded broker of VAR_DIR: whoever starts the processes
# (``buffet run``, the benchmarks, the test session) starts it first.
BUFFET_EMBEDDED_BROKER = not os.environ.get("CELERY_BROKER_URL")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or broker.url(VAR_DIR / "broker")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A message a worker took and never acknowledged (its main process died) is delivered
# again after this long; a killed pool child's message is handed back at once. kombu's
# SQLAlchemy transport (no longer the default: docs/broker.md) hands its options to
# create_engine: give it none.
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {} if CELERY_BROKER_URL.startswith("sqla+") else {"visibility_timeout": 3600}
)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# --- Internationalisation -------------------------------------------------------------
LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- REST API -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "base.api.pagination.Pagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "base.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "base.api.problems.exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_THROTTLE_RATES": {
        "signup": os.environ.get("BUFFET_THROTTLE_SIGNUP", "20/hour"),
        "token": os.environ.get("BUFFET_THROTTLE_TOKEN", "30/minute"),
        "invitation": os.environ.get("BUFFET_THROTTLE_INVITATION", "30/hour"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Buffet API",
    "DESCRIPTION": """\
Self-service cloud portal: the provider's catalog (`/api/v1/admin/`) and the tenant's
subscriptions, networks, VMs, checkpoints and jobs.

- **Authentication**: `Authorization: Token <key>`, with a key from
  `POST /api/v1/auth/token/` (the word is `Token`, not `Bearer`; with a client generated by
  openapi-python-client: `AuthenticatedClient(base_url, token=key, prefix="Token")`).
- **Errors** are problem details (RFC 9457) under `application/problem+json`, one
  `ProblemDetails` shape for all: 400 bad input, 401 no or bad credentials, 403 not
  allowed, 404 not found or another tenant's, 409 state conflict or quota exceeded,
  429 throttled.
- **Fabric changes are jobs**: the call answers 202 with the resource in a transitional
  state, its `job`, and `Location: /api/v1/jobs/<uuid>/`; poll the job until its `state`
  is `succeeded`, `failed`, `rolled_back` or `cancelled`.
- **Retries**: send an `Idempotency-Key` with a POST to retry it safely; a 429 and a 409
  that a retry can cure carry `Retry-After` (seconds).
- **Lists** are paginated (`count`, `next`, `previous`, `results`; `?page_size=` up to 500).
""",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # Every enum has a stable name that clients generated from the document keep.
    "ENUM_NAME_OVERRIDES": {
        "JobState": "provisioning.models.JobState",
        "StepState": "provisioning.models.StepState",
        "VmState": "provisioning.models.VmState",
        "NetworkState": "provisioning.models.NetworkState",
        "SnapshotState": "provisioning.models.SnapshotState",
        "TaskRunState": "provisioning.models.TaskRunState",
        "HideableRole": "provisioning.api.tasks.HIDEABLE_ROLES",
        "SubscriptionState": "plans.models.SubscriptionState",
        "PlanState": "plans.models.PlanState",
        "AddOnKind": "plans.models.AddOnKind",
        "Role": "tenants.models.Role",
        "TokenState": "tenants.models.TokenState",
        "StampHealth": "fabric.models.Health",
        "StampDriver": "fabric.models.DriverKind",
        "ProtectionState": "dr_addon.models.ProtectionState",
        "ProtectedVmState": "dr_addon.models.ProtectedVmState",
        "ActiveSite": "dr_addon.models.ActiveSite",
        "DrillKind": "dr_addon.models.DrillKind",
        "FailoverMode": "dr_addon.api.views.FAILOVER_MODES",
        "Meter": "billing.models.Meter",
        "MissingUsageState": "billing.models.MissingState",
        "UsageGranularity": "billing.usage.Granularity",
        "InvoiceState": "billing.rating_models.InvoiceState",
        "UsageMeter": "billing.prices.USAGE_METER_CHOICES",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Base URI of problem types (RFC 9457 "type").
BUFFET_PROBLEM_BASE = "https://buffet.invalid/problems"
# How long an Idempotency-Key is remembered.
BUFFET_IDEMPOTENCY_TTL_HOURS = int(os.environ.get("BUFFET_IDEMPOTENCY_TTL_HOURS", "24"))

# --- Email ----------------------------------------------------------------------------
# Invitations go out by email: printed on the console unless an SMTP server is set.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS")
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL")
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "10"))
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", (
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Buffet <noreply@buffet.local>")
# The portal's address as people reach it (``https://cloud.example.com``), for the links in
# emails; without it, the address the inviter's request came to.
BUFFET_PUBLIC_URL = os.environ.get("BUFFET_PUBLIC_URL", "").rstrip("/")
# How long an invitation's link can be used (7 days).
BUFFET_INVITATION_TTL_HOURS = int(os.environ.get("BUFFET_INVITATION_TTL_HOURS", "168"))
# The most rows one CSV export of the audit trail streams (narrow it with the filters).
BUFFET_AUDIT_CSV_MAX_ROWS = int(os.environ.get("BUFFET_AUDIT_CSV_MAX_ROWS", "100000"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "base.requestid.RequestIdFilter"}},
    "formatters": {"plain": {
        "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                             "filters": ["request_id"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("BUFFET_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Runbook engine -------------------------------------------------------------------
# A running job whose worker has not been heard of for this long is handed to another.
BUFFET_JOB_LEASE_SECONDS = int(os.environ.get("BUFFET_JOB_LEASE_SECONDS", "60"))
# A job not published this long after its commit is published by the relay.
BUFFET_OUTBOX_GRACE_SECONDS = int(os.environ.get("BUFFET_OUTBOX_GRACE_SECONDS", "10"))
# A job not finished this long after it was asked for is reported as stuck.
BUFFET_JOB_STUCK_SECONDS = int(os.environ.get("BUFFET_JOB_STUCK_SECONDS", "1800"))
# A VM, network, checkpoint or site this long in a transitional state with no job acting on
# it is marked failed (provisioning.stuck). Generous: well past the longest job.
BUFFET_STUCK_RESOURCE_SECONDS = int(os.environ.get("BUFFET_STUCK_RESOURCE_SECONDS", "3600"))
# Timeout of one call to a stamp (retries and polling included).
BUFFET_DRIVER_TIMEOUT = float(os.environ.get("BUFFET_DRIVER_TIMEOUT", "30"))
# Calls to a stamp one step makes at once when it makes one per item (a DR step, one per
# VM): each waits for the stamp on a thread of its own (provisioning.engine.fanout).
BUFFET_STEP_CONCURRENCY = int(os.environ.get("BUFFET_STEP_CONCURRENCY", "16"))
