"""Settings, all from the environment.

Profiles (``MQCLOUD_PROFILE``):
- ``embedded`` (default): what ``make run`` uses. SQLite, a Celery transport on the filesystem, mail to a
  local outbox, no host off the machine is ever contacted.
- ``test``: what ``make test`` uses. PostgreSQL and Redis from ``DATABASE_URL`` / ``REDIS_URL``.
- ``production``: PostgreSQL and Redis are required, ``SECRET_KEY`` and ``FIELD_ENCRYPTION_KEYS`` must be
  set, DEBUG is off, cookies are secure and HSTS is on.
"""

from __future__ import annotations

import json
from pathlib import Path

import dj_database_url

from controlplane.env import env_bool, env_int, env_list, env_str, installation_secret, loopback_standins
from controlplane.queues import (
    BEAT_SCHEDULE,
    HOUSEKEEPING,
    QUEUES,
    TASK_ROUTES,
    beat_lock_settings,
    redis_transport_options,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("MQCLOUD_VAR_DIR", str(BASE_DIR / "var")))

PROFILE = env_str("MQCLOUD_PROFILE", "embedded")
if PROFILE not in {"embedded", "test", "production"}:
    raise ValueError(f"MQCLOUD_PROFILE={PROFILE!r}: use embedded, test or production")
PRODUCTION = PROFILE == "production"
EMBEDDED = PROFILE == "embedded"
if EMBEDDED:
    VAR_DIR.mkdir(parents=True, exist_ok=True)

# --- core -------------------------------------------------------------------------------------------
# Outside production, without SECRET_KEY, each installation makes its own on first start (var/secret_key, mode
# 0600) and keeps it: sessions and the encryption keys derived from it (FIELD_ENCRYPTION_KEYS unset) survive
# restarts, and no two installations share a key published in the source.
if PRODUCTION:
    SECRET_KEY = env_str("SECRET_KEY", required=True)
else:
    SECRET_KEY = env_str("SECRET_KEY", "") or installation_secret(VAR_DIR / "secret_key")
# Debug pages list settings, URLs and source code: only the test profile has them by default. `make run` is
# off (bin/run_embedded.py refuses DEBUG=1 on an address other than loopback).
DEBUG = env_bool("DEBUG", default=PROFILE == "test")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# `make run-production` (controlplane.env.loopback_standins): the outside world simulated, as outside production.
LOOPBACK_STANDINS = loopback_standins(ALLOWED_HOSTS)
SIMULATED_OUTSIDE = not PRODUCTION or LOOPBACK_STANDINS
# Where the console is reachable; used in links inside emails.
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    # Django's admin as the ops site, its own site class (ops/apps.py): two-factor for every operator.
    "ops.apps.OpsAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "controlplane",
    "projects",
    "deployments",
    "k8s",
    "billing",
    "alerts",
]

MIDDLEWARE = [
    # Outside everything: the request id is bound for every layer's log lines and echoed on every answer, and
    # each answer is counted and timed by its route (controlplane/request_context.py, controlplane/telemetry.py).
    "controlplane.request_context.RequestIdMiddleware",
    "controlplane.telemetry.RequestMetricsMiddleware",
    # Outermost, so it sees what every other layer answers or raises (controlplane/middleware.py).
    "controlplane.middleware.ErrorResponseMiddleware",
    # Before the host check and the HTTPS redirect, which would misanswer the kubelet's probes (see there).
    "controlplane.health.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "projects.session_tracking.ConsoleSessionMiddleware",  # needs the user and messages: session records, timeouts
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"
AUTH_USER_MODEL = "projects.User"
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:home"
LOGOUT_REDIRECT_URL = "console:login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "controlplane" / "templates"], "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "projects.console.context.console_context",
            ],
        },
    },
]

# --- data stores ------------------------------------------------------------------------------------
_default_db = f"sqlite:///{VAR_DIR / 'mqcloud.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", required=True) if PRODUCTION else env_str("DATABASE_URL", _default_db),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60 if PRODUCTION else 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default's web server, worker and beat write to one file at once. WAL lets readers go on
    # while one writes; IMMEDIATE makes every transaction take the write lock when it begins, so it waits
    # (up to the busy timeout) instead of failing at once when a read inside it turns into a write; a write
    # that still finds the file locked is a 503 with Retry-After (controlplane/middleware.py), never a 500.
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        "transaction_mode": "IMMEDIATE",
        "timeout": env_int("SQLITE_BUSY_TIMEOUT_S", 20),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    })
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", required=True) if PRODUCTION else env_str("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # The embedded default has several processes (web, worker, beat); a database cache is shared by all
    # of them, so rate limits and login lockouts hold across processes without Redis.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "mqcloud_cache"}}

# --- Celery -----------------------------------------------------------------------------------------
if REDIS_URL:
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = redis_transport_options(env_int("CELERY_VISIBILITY_TIMEOUT_S", 0),
                                                                    env_int("CELERY_UNACKED_RESTORE_SWEEP_S", 100))
else:
    CELERY_BROKER_URL = "filesystem://localhost/"
    _queue_dir = str(VAR_DIR / "celery-queue")
    CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": _queue_dir, "data_folder_out": _queue_dir,
                                       "processed_folder": str(VAR_DIR / "celery-processed"), "store_processed": False,
                                       "control_folder": str(VAR_DIR / "celery-control")}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# One queue per kind of work (controlplane/queues.py); unrouted sends land on housekeeping, never a queue
# nobody consumes.
CELERY_TASK_QUEUES = {name: {"exchange": name, "routing_key": name} for name in QUEUES}
CELERY_TASK_DEFAULT_QUEUE = HOUSEKEEPING
CELERY_TASK_ROUTES = TASK_ROUTES
if PRODUCTION:
    # Exactly one beat schedules, whatever the replica count (a Redis lock; see beat_lock_settings).
    globals().update({f"CELERY_{key.upper()}": value for key, value in beat_lock_settings(REDIS_URL).items()})
# What beat sends and when (controlplane/queues.py, beside where each task goes).
CELERY_BEAT_SCHEDULE = BEAT_SCHEDULE

# --- security ---------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if PROFILE == "test":
    # Hashing is deliberately slow in production; tests log in hundreds of times.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Fernet keys (urlsafe base64, 32 bytes) for secrets stored in the database; the first one encrypts,
# all of them decrypt, so keys can be rotated by prepending a new one.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", [])
if PRODUCTION and not FIELD_ENCRYPTION_KEYS:
    raise ValueError("FIELD_ENCRYPTION_KEYS must be set in production")

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_FAILURE_VIEW = "controlplane.error_pages.csrf_failure"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SESSION_COOKIE_SECURE = not LOOPBACK_STANDINS
    CSRF_COOKIE_SECURE = not LOOPBACK_STANDINS
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not LOOPBACK_STANDINS)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if LOOPBACK_STANDINS else 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# Where the attempt counters of logins, signups and API rate limits live (controlplane/ratelimit.py):
# "redis" (REDIS_URL) or "database" (a table; the embedded default, which has no Redis).
RATE_LIMIT_STORE = env_str("RATE_LIMIT_STORE", "redis" if REDIS_URL else "database")
if RATE_LIMIT_STORE not in {"redis", "database"} or (RATE_LIMIT_STORE == "redis" and not REDIS_URL):
    raise ValueError(f"RATE_LIMIT_STORE={RATE_LIMIT_STORE!r}: use database, or redis with REDIS_URL set")

# Login brute-force protection: this many failures per email (four times as many per IP) within the window
# lock it out; the window opens at the first failure.
LOGIN_MAX_FAILURES = env_int("LOGIN_MAX_FAILURES", 5)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900)
# How long a mailed password reset link works; it also stops working once used (the password hash changes).
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3600)
# SSO domain verification by DNS TXT record (projects/services/sso_settings.py): the resolvers asked, comma
# separated; empty: the system's.
SSO_DNS_NAMESERVERS = [ns for ns in env_str("SSO_DNS_NAMESERVERS", "").split(",") if ns.strip()]

# Requests allowed per minute: per credential (API key or user) and per client IP.
API_RATE_LIMITS = {
    "credential": env_str("API_RATE_LIMIT_CREDENTIAL", "600/min"),
    "ip": env_str("API_RATE_LIMIT_IP", "1200/min"),
    "signup": env_str("API_RATE_LIMIT_SIGNUP", "20/hour"),
    # Password reset requests and confirmations per client IP, and reset mails per address.
    "password_reset": env_str("API_RATE_LIMIT_PASSWORD_RESET", "20/hour"),
    "password_reset_email": env_str("API_RATE_LIMIT_PASSWORD_RESET_EMAIL", "5/hour"),
}
INVITATION_TTL_SECONDS = env_int("INVITATION_TTL_SECONDS", 7 * 24 * 3600)
IDEMPOTENCY_TTL_SECONDS = env_int("IDEMPOTENCY_TTL_SECONDS", 24 * 3600)

# --- email ------------------------------------------------------------------------------------------
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "mqcloud <no-reply@mqcloud.localhost>")
if EMBEDDED and not env_str("EMAIL_HOST", ""):
    # Mail lands in var/outbox/ and the console shows it: nothing leaves the machine.
    EMAIL_BACKEND = "controlplane.mail.OutboxEmailBackend"
    EMAIL_FILE_PATH = str(VAR_DIR / "outbox")
else:
    EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
    EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
    EMAIL_PORT = env_int("EMAIL_PORT", 25)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
    EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)

# --- i18n, static -----------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "controlplane.static_storage.GzipManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION

# --- REST API ---------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "projects.authentication.ApiKeyAuthentication",
        "projects.authentication.ConsoleSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["controlplane.api.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": [
        "controlplane.api.throttling.CredentialRateThrottle",
        "controlplane.api.throttling.ClientIpRateThrottle",
    ],
    "DEFAULT_PAGINATION_CLASS": "controlplane.api.pagination.CursorLimitPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "controlplane.api.problems.problem_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%S.%fZ",
    "COERCE_DECIMAL_TO_STRING": True,
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "mqcloud API",
    "DESCRIPTION": "Control plane of a managed MQTT cloud. Authenticate with `Authorization: Bearer <api key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"tryItOutEnabled": True, "persistAuthorization": True},
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "projects.roles.Role.choices",
        "SiteEnum": "projects.models.Site.choices",
        "DeploymentStatusEnum": "deployments.models.DeploymentStatus.choices",
        "PeeringStatusEnum": "deployments.models.PeeringStatus.choices",
        "GrantableRoleEnum": "projects.roles.GRANTABLE_ROLES",  # what SSO groups may grant (never owner)
        "UpgradeStatusEnum": "deployments.upgrades.models.UpgradeStatus.choices",
        "ChannelTypeEnum": "alerts.models.ChannelType.choices",
        # What a rule may watch (metrics and lifecycle conditions) versus what the metrics endpoint serves.
        "RuleMetricEnum": "alerts.models.RULE_METRICS",
        "MetricEnum": "alerts.models.PUBLIC_METRICS",
    },
}

# --- outbound HTTP to customer URLs (controlplane/outbound.py) -----------------------------------
# Only the test suite and the loopback stand-ins turn this on: it lets the guarded client reach loopback receivers.
OUTBOUND_HTTP_ALLOW_LOOPBACK = env_bool("OUTBOUND_HTTP_ALLOW_LOOPBACK", False) and SIMULATED_OUTSIDE

# --- Kubernetes -------------------------------------------------------------------------------------
# Per region: {"aws-us-east-1": {"kubeconfig": "/etc/mqcloud/kube/us-east-1.yaml", "context": "..."}} or
# {"...": {"in_cluster": true}}. Regions not listed use the simulated cluster at KUBERNETES_SIMULATOR_URL.
KUBERNETES_CLUSTERS = json.loads(env_str("KUBERNETES_CLUSTERS_JSON", "{}"))
KUBERNETES_SIMULATOR_URL = env_str("KUBERNETES_SIMULATOR_URL", "" if PRODUCTION else "http://127.0.0.1:8790")
EMQX_IMAGE = env_str("EMQX_IMAGE", "emqx/emqx:5.8.6")
# Our side's rate limit per cluster and worker process (client-go's QPS and burst; k8s.clusters). 0: no limit.
KUBERNETES_CLIENT_QPS = env_int("KUBERNETES_CLIENT_QPS", 50)
KUBERNETES_CLIENT_BURST = env_int("KUBERNETES_CLIENT_BURST", 100)
# Provisioning reads rollouts from a watch of each cluster (k8s.observer) instead of polling with GETs. The test
# profile polls (no watch threads behind every test); the tests of the cache turn it on.
KUBERNETES_WATCH_CACHE = env_bool("KUBERNETES_WATCH_CACHE", PROFILE != "test")
# The clusters' own pod and service ranges (kubeadm's and most managed clusters' defaults), kept out of the
# brokers' egress (k8s.render) even where a peering would contain them or they are not private ranges. A
# region's entry in KUBERNETES_CLUSTERS may give its own as "cluster_cidrs": [...].
KUBERNETES_CLUSTER_CIDRS = env_list("KUBERNETES_CLUSTER_CIDRS", ["10.244.0.0/16", "10.96.0.0/12"])
# Where the control plane reaches a broker's management API (EMQX 5 REST; deployments/mqtt_access/broker_api.py).
# {namespace}: the deployment's namespace; {endpoint_host}: the host of its MQTT endpoints. A real cluster is
# reached through the in-cluster Service the renderer creates; the simulated cluster's brokers listen on a
# loopback address of their own, which is also their endpoint host.
BROKER_MANAGEMENT_URL_TEMPLATE = env_str(
    "BROKER_MANAGEMENT_URL_TEMPLATE",
    "http://{endpoint_host}:18083" if SIMULATED_OUTSIDE else "http://emqx-api.{namespace}.svc:18083")
BROKER_API_TIMEOUT_S = env_int("BROKER_API_TIMEOUT_S", 5)
BROKER_MANAGEMENT_LOOPBACK_ONLY = SIMULATED_OUTSIDE

# --- alerts and metrics -----------------------------------------------------------------------------
METRICS_RETENTION_DAYS = env_int("METRICS_RETENTION_DAYS", 7)
METRICS_SCRAPE_CONCURRENCY = env_int("METRICS_SCRAPE_CONCURRENCY", 16)
METRICS_SCRAPE_CONNECT_TIMEOUT_S = 1.0
METRICS_SCRAPE_READ_TIMEOUT_S = 2.0
# Counters older than this are not used to compute a rate (a gap in scraping starts the rate afresh).
METRICS_RATE_WINDOW_S = 300
PAGERDUTY_EVENTS_URL = env_str("PAGERDUTY_EVENTS_URL", "https://events.pagerduty.com/v2/enqueue")
# A sample older than this does not count as the current value (a broker that stopped reporting).
ALERTS_SAMPLE_STALE_S = 120
# An incident resolves once its condition has been clear this long (damps flapping around the threshold).
ALERTS_RESOLVE_AFTER_S = env_int("ALERTS_RESOLVE_AFTER_S", 60)
NOTIFICATION_TIMEOUT_S = 10.0
# Delays before attempts 2, 3, ... of a transient failure (Standard Webhooks-like: seconds, minutes, hours).
NOTIFICATION_RETRY_SCHEDULE_S = [5, 300, 1800, 7200, 18000, 36000, 36000]
NOTIFICATION_REDRIVE_AFTER_S = 600
# How long one delivery attempt keeps others off a notification: far beyond the longest attempt (the outbound
# client's total deadline, NOTIFICATION_TIMEOUT_S; SMTP's EMAIL_TIMEOUT per step), below NOTIFICATION_REDRIVE_AFTER_S
# so a worker that died mid-attempt is re-driven at the next pass.
NOTIFICATION_CLAIM_S = 300
PAGERDUTY_EVENTS_PER_MINUTE = 120
# The batch sender (alerts.services.sending): threads per process; sends in flight per receiving host (so a slow
# receiver holds that many threads, never all); attempts stored per transaction; how long an outcome may wait to be
# stored; an answer outstanding this long marks its host slow; how long one run claims before it ends.
NOTIFICATION_SEND_CONCURRENCY = env_int("NOTIFICATION_SEND_CONCURRENCY", 16)
NOTIFICATION_SEND_PER_HOST = env_int("NOTIFICATION_SEND_PER_HOST", 4)
NOTIFICATION_SEND_BATCH = 100
NOTIFICATION_SEND_FLUSH_S = 0.25
NOTIFICATION_SEND_SLOW_S = 1.0
NOTIFICATION_SEND_RUN_S = 60.0
# A channel whose every delivery has failed this long (no success since) is disabled and its owners told (Svix: 5).
ALERT_CHANNEL_DISABLE_AFTER_DAYS = env_int("ALERT_CHANNEL_DISABLE_AFTER_DAYS", 5)
# A transitional state held longer than this moves the deployment to failed with the last observation.
DEPLOYMENT_OPERATION_TIMEOUT_SECONDS = env_int("DEPLOYMENT_OPERATION_TIMEOUT_SECONDS", 900)
# How soon a worker looks again at a rollout in progress.
DEPLOYMENT_POLL_SECONDS = float(env_str("DEPLOYMENT_POLL_SECONDS", "2"))
# What a change preview estimates for one broker node to restart and take clients again (stop, start, join the
# cluster, pass readiness). 60 s is what an EMQX pod of the catalog's sizes takes; a preview's estimate is this
# times the nodes that restart, so it is an order of magnitude to plan by, not a promise.
NODE_RESTART_ESTIMATE_SECONDS = env_int("NODE_RESTART_ESTIMATE_SECONDS", 60)
#: How long a version upgrade waits for one node to come back Ready on the new version before it rolls the
#: deployment back to the previous one (deployments.upgrades).
UPGRADE_NODE_TIMEOUT_SECONDS = env_int("UPGRADE_NODE_TIMEOUT_SECONDS", 600)

# --- TLS of the deployments' endpoints (deployments/tls/) ------------------------------------------------
# One private CA per region signs each deployment's server certificate. A CA is replaced this long before it
# expires (the old one stays in ca.pem while certificates it signed are in use), a certificate re-issued this
# long before (renewal runs hourly, so a failure has weeks of retries before a client sees an expired one).
TLS_CA_LIFETIME_DAYS = env_int("TLS_CA_LIFETIME_DAYS", 3650)
TLS_CA_RENEW_BEFORE_DAYS = env_int("TLS_CA_RENEW_BEFORE_DAYS", 365)
TLS_CERT_LIFETIME_DAYS = env_int("TLS_CERT_LIFETIME_DAYS", 90)
TLS_RENEW_BEFORE_DAYS = env_int("TLS_RENEW_BEFORE_DAYS", 30)

# --- VPC peering (deployments/peering/) ---------------------------------------------------------------
# Outside production the workers talk to simulated clouds on loopback (deployments.cloudsim: moto's server
# for AWS, our Azure Resource Manager stand-in); production needs the platform's own credentials.
PEERING_AWS_ENDPOINT_URL = env_str("PEERING_AWS_ENDPOINT_URL", "" if PRODUCTION else "http://127.0.0.1:8791")
# Empty in production: boto3's default chain (the worker pod's IAM role) supplies credentials.
PEERING_AWS_ACCESS_KEY_ID = env_str("PEERING_AWS_ACCESS_KEY_ID", "" if PRODUCTION else "testing")
PEERING_AWS_SECRET_ACCESS_KEY = env_str("PEERING_AWS_SECRET_ACCESS_KEY", "" if PRODUCTION else "testing")
PEERING_AWS_MAX_ATTEMPTS = env_int("PEERING_AWS_MAX_ATTEMPTS", 3 if PRODUCTION else 1)
PEERING_AWS_ACCEPT_DAYS = env_int("PEERING_AWS_ACCEPT_DAYS", 7)
PEERING_AZURE_SIMULATED = env_bool("PEERING_AZURE_SIMULATED", SIMULATED_OUTSIDE) and SIMULATED_OUTSIDE
PEERING_AZURE_ENDPOINT_URL = env_str(
    "PEERING_AZURE_ENDPOINT_URL", "http://127.0.0.1:8792" if PEERING_AZURE_SIMULATED else "https://management.azure.com")
PEERING_AZURE_TENANT_ID = env_str("PEERING_AZURE_TENANT_ID", "", required=not SIMULATED_OUTSIDE)
PEERING_AZURE_CLIENT_ID = env_str("PEERING_AZURE_CLIENT_ID", "", required=not SIMULATED_OUTSIDE)
PEERING_AZURE_CLIENT_SECRET = env_str("PEERING_AZURE_CLIENT_SECRET", "", required=not SIMULATED_OUTSIDE)
PEERING_AZURE_POLLING_INTERVAL = env_int("PEERING_AZURE_POLLING_INTERVAL", 10 if PRODUCTION else 0)
PEERING_AZURE_RETRY_TOTAL = env_int("PEERING_AZURE_RETRY_TOTAL", 3 if PRODUCTION else 0)
# Per-region overrides of the catalog's platform network ({"aws-us-east-1": {"vpc_id": ...}}): the simulated
# clouds cannot create resources with the catalog's ids. A JSON file written by deployments.cloudsim, or inline.
PEERING_PLATFORM_NETWORKS_FILE = env_str("PEERING_PLATFORM_NETWORKS_FILE",
                                         "" if PRODUCTION else str(VAR_DIR / "cloudsim-networks.json"))
PEERING_PLATFORM_NETWORKS = {} if PRODUCTION else json.loads(env_str("PEERING_PLATFORM_NETWORKS_JSON", "{}"))
# The ops action "play the customer's side" (accept / create the reverse peering): simulated clouds only.
PEERING_SIMULATED_CUSTOMER = env_bool("PEERING_SIMULATED_CUSTOMER", SIMULATED_OUTSIDE) and SIMULATED_OUTSIDE
PEERING_BROKER_PORTS = [int(p) for p in env_list("PEERING_BROKER_PORTS", ["1883", "8883", "8083", "8084"])]
PEERING_MAX_PER_DEPLOYMENT = env_int("PEERING_MAX_PER_DEPLOYMENT", 10)
# How soon a worker looks again while waiting for the customer: often at first, then rarely.
PEERING_POLL_SECONDS = float(env_str("PEERING_POLL_SECONDS", "5"))
PEERING_SLOW_POLL_SECONDS = float(env_str("PEERING_SLOW_POLL_SECONDS", "300"))
PEERING_FAST_POLL_WINDOW_SECONDS = env_int("PEERING_FAST_POLL_WINDOW_SECONDS", 3600)

# --- Stripe (billing/stripe_gateway.py) ----------------------------------------------------------
# No secret key = offline mode (the embedded default): invoices are kept here and nothing is sent to Stripe.
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY", "")
STRIPE_PUBLISHABLE_KEY = env_str("STRIPE_PUBLISHABLE_KEY", "")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET", "")
# Where the Stripe client sends requests; tests point it at a local stand-in (localstripe).
STRIPE_API_BASE = env_str("STRIPE_API_BASE", "https://api.stripe.com")
# Stripe.js for the console's card form (only loaded when a publishable key is set).
STRIPE_JS_URL = env_str("STRIPE_JS_URL", "https://js.stripe.com/v3/")
STRIPE_WEBHOOK_TOLERANCE_S = env_int("STRIPE_WEBHOOK_TOLERANCE_S", 300)
STRIPE_MAX_NETWORK_RETRIES = env_int("STRIPE_MAX_NETWORK_RETRIES", 2 if PRODUCTION else 0)
STRIPE_TIMEOUT_S = env_int("STRIPE_TIMEOUT_S", 30)
if PRODUCTION and STRIPE_SECRET_KEY and not STRIPE_WEBHOOK_SECRET:
    raise ValueError("STRIPE_WEBHOOK_SECRET must be set when STRIPE_SECRET_KEY is")
# Dunning: charge again this many days after the first failure; stop deployments after the grace period.
BILLING_DUNNING_RETRY_DAYS = [int(d) for d in env_list("BILLING_DUNNING_RETRY_DAYS", ["1", "3", "5"])]
BILLING_DUNNING_GRACE_DAYS = env_int("BILLING_DUNNING_GRACE_DAYS", 14)
# A pending charge attempt (outage, crashed worker) older than this is driven again by the beat job.
BILLING_COLLECT_REDRIVE_AFTER_S = env_int("BILLING_COLLECT_REDRIVE_AFTER_S", 600)
# --- VAT number checks (billing/vies.py) ----------------------------------------------------------
# The EU VIES REST API, reached through the guarded outbound client. Empty outside production: no call is
# made and numbers stay `unchecked` (the embedded default never leaves the machine; tests point it at a
# local stand-in).
VIES_URL = env_str("VIES_URL", "https://ec.europa.eu/taxation_customs/vies/rest-api/check-vat-number"
                   if not SIMULATED_OUTSIDE else "")
# Our own VAT number (e.g. DE123456789): with it VIES returns a consultation number, the proof of the check.
VIES_REQUESTER_VAT = env_str("VIES_REQUESTER_VAT", "")
VIES_TIMEOUT_S = float(env_str("VIES_TIMEOUT_S", "15"))
# Delays before retries of a check VIES could not answer; after the last one the hourly recheck takes over.
VIES_RETRY_SCHEDULE_S = [60, 300, 900, 3600]
# The hourly recheck leaves alone a number whose last attempt is more recent than this.
VIES_RECHECK_AFTER_S = env_int("VIES_RECHECK_AFTER_S", 3600)

# --- observability (controlplane/telemetry.py, controlplane/request_context.py, ops/metrics.py) --------------
# The bearer token Prometheus scrapes /metrics with; unset, /metrics answers 404. Multiprocess servers (gunicorn,
# Celery's prefork pool) also need PROMETHEUS_MULTIPROC_DIR (docs/observability.md).
METRICS_SCRAPE_TOKEN = env_str("METRICS_SCRAPE_TOKEN", "")
# A Celery worker serves its own task metrics here when set (0: off); the address is loopback unless told otherwise.
METRICS_WORKER_PORT = env_int("METRICS_WORKER_PORT", 0)
METRICS_WORKER_ADDRESS = env_str("METRICS_WORKER_ADDRESS", "127.0.0.1")
# Production logs one JSON object per line (request, organization, deployment and task ids as fields) for a log
# pipeline; the other profiles keep a line a person reads. LOG_FORMAT=json|plain overrides.
LOG_FORMAT = env_str("LOG_FORMAT", "json" if PRODUCTION else "plain")
if LOG_FORMAT not in {"json", "plain"}:
    raise ValueError(f"LOG_FORMAT={LOG_FORMAT!r}: use json or plain")
# Celery's worker would replace the root logger's handlers with its own format; keep ours where it is JSON.
CELERY_WORKER_HIJACK_ROOT_LOGGER = LOG_FORMAT != "json"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "pythonjsonlogger.json.JsonFormatter",
                 "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(organization_id)s "
                           "%(deployment_id)s %(task_id)s",
                 "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"}},
    },
    "filters": {"busy_database": {"()": "controlplane.log_filters.BusyDatabaseFilter"},
                "request_context": {"()": "controlplane.request_context.ContextFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT,
                             "filters": ["request_context"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR", "filters": ["busy_database"]},
                # The Azure SDK logs every request and response at INFO.
                "azure": {"level": "WARNING"}},
}
