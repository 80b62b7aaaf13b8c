"""Settings, read from the environment (see README "Configuration").

Every deployment-specific value comes from an environment variable; the defaults give a
working development site on SQLite with a local Redis.
"""

import os
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.templatetags.static import static
from django.utils.csp import CSP

from campaigns.conf import options_from_environment

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str(
    "SECRET_KEY",
    default="django-insecure-development-only-key-change-me" if DEBUG else environ.Env.NOTSET,
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "unfold",
    "unfold.contrib.filters",
    "unfold.contrib.import_export",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_rq",
    "import_export",
    "ninja",  # the HTTP API's docs page (its template and Swagger UI's static files)
    "channels",
    "campaigns",
    "axes",  # login throttling (see "Security" below)
]

MIDDLEWARE = [
    "notifier_site.probes.ProbesMiddleware",  # /healthz, /readyz, /metrics: before any check
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files, right after security
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "notifier_site.csp.PolicyByNamespaceMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

ROOT_URLCONF = "notifier_site.urls"
WSGI_APPLICATION = "notifier_site.wsgi.application"

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
                "django.template.context_processors.csp",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers take the lock when the transaction starts, so a web process and a worker
    # serialise instead of failing with "database is locked" half way through.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    # An unreachable server fails a connection in 5 s instead of the OS's minutes, so a probe
    # (/readyz) or a worker does not hang on it (?connect_timeout= in DATABASE_URL wins).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en")
LANGUAGES = [("en", "English"), ("de", "German"), ("fr", "French"), ("es", "Spanish")]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
# STATIC_MANIFEST=1 (the image sets it, after collectstatic): files served by WhiteNoise under
# content-hashed names, compressed, cached for a year. Off, names stay as written (make run,
# tests), which needs no collectstatic.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env.bool("STATIC_MANIFEST", default=False)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

LOGIN_URL = "login"  # end users' login page; the admin keeps its own
LOGIN_REDIRECT_URL = "/inbox/"
LOGOUT_REDIRECT_URL = "login"

# --- Email -------------------------------------------------------------------------------
# Django 6.1 mailers. EMAIL_URL picks the default mailer: smtp://user:pass@host:587/?tls=1,
# console:// (development default), locmem:// or dummy://.
_email = env.email_url("EMAIL_URL", default="consolemail://")
_email_backend = _email.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
_email_options = {}
if _email_backend.endswith("smtp.EmailBackend"):
    _email_options = {
        "host": _email.get("EMAIL_HOST") or "localhost",
        "port": _email.get("EMAIL_PORT") or 25,
        "username": _email.get("EMAIL_HOST_USER") or None,
        "password": _email.get("EMAIL_HOST_PASSWORD") or None,
        "use_tls": bool(_email.get("EMAIL_USE_TLS")),
        "use_ssl": bool(_email.get("EMAIL_USE_SSL")),
        "timeout": env.int("EMAIL_TIMEOUT", default=20),
    }
MAILERS = {"default": {"BACKEND": _email_backend, "OPTIONS": _email_options}}
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Notifier <notifier@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Redis and RQ --------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
RQ_QUEUES = {
    "notifier": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 900},  # the transactional lane
    "notifier-bulk": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 900},  # campaigns
    "default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 900},
}
# No second copy of django-rq's views inside the admin (they would let any staff member in):
# the dashboard lives at /django-rq/, for superusers only (notifier_site/urls.py).
RQ_SHOW_ADMIN_LINK = False
# Notifier enqueues after commit itself (campaigns.outbox.queueing), so django-rq need not defer.
RQ = {"COMMIT_MODE": "auto"}

# --- Notifier ------------------------------------------------------------------------------
# Read through campaigns.conf.app_settings and channels.conf.channel_settings; every key is
# documented there.
NOTIFIER = {
    "CHANNELS": {
        "email": {
            "BACKEND": "channels.backends.email.EmailBackend",
            "NAME": "Email",
            "OPTIONS": {"mailer": "default"},
        },
        "inbox": {"BACKEND": "channels.backends.inbox.InboxBackend", "NAME": "In-app inbox"},
    },
    "EVENTS": {},
    # Every option declared in campaigns/conf.py and channels/conf.py can be set as
    # NOTIFIER_<NAME>, typed by its declaration; a value its type refuses stops the process
    # here, naming the variable.
    **options_from_environment(os.environ),
}

# --- Admin ---------------------------------------------------------------------------------
UNFOLD = {
    "SITE_TITLE": "Notifier",
    # htmx for the admin's live parts (template preview), served from static/, no CDN.
    "SCRIPTS": [
        lambda request: static("notifier/vendor/htmx-2.0.11.min.js"),
        lambda request: static("notifier/admin.js"),  # data-confirm on forms
    ],
    # The few utilities of Notifier's admin pages that unfold's stylesheet does not carry.
    "STYLES": [lambda request: static("notifier/admin.css")],
    "SITE_HEADER": "Notifier",
    "SITE_SYMBOL": "notifications",
    "SITE_FAVICONS": [
        {"rel": "icon", "type": "image/svg+xml", "href": lambda r: static("notifier/favicon.svg")},
        {"rel": "icon", "sizes": "32x32", "href": lambda r: static("notifier/favicon.ico")},
    ],
    "DASHBOARD_CALLBACK": "campaigns.admin.dashboard.dashboard_callback",
    "SHOW_HISTORY": True,
    "SIDEBAR": {
        "show_search": True,
        "show_all_applications": True,
        "navigation": [
            {
                "title": "Notifications",
                "items": [
                    {
                        "title": "People",
                        "icon": "person_search",
                        "link": "/admin/campaigns/message/people/",
                        "permission": "campaigns.admin.permissions.can_view_messages",
                    },
                    {
                        "title": "Events",
                        "icon": "bolt",
                        "link": "/admin/campaigns/event/",
                        "permission": "campaigns.admin.permissions.can_view_events",
                    },
                    {
                        "title": "Templates",
                        "icon": "description",
                        "link": "/admin/campaigns/template/",
                        "permission": "campaigns.admin.permissions.can_view_templates",
                    },
                    {
                        "title": "Layouts",
                        "icon": "web",
                        "link": "/admin/campaigns/layout/",
                        "permission": "campaigns.admin.permissions.can_view_layouts",
                    },
                    {
                        "title": "Partials",
                        "icon": "extension",
                        "link": "/admin/campaigns/partial/",
                        "permission": "campaigns.admin.permissions.can_view_partials",
                    },
                    {
                        "title": "Channels",
                        "icon": "hub",
                        "link": "/admin/channels/channelconfig/",
                        "permission": "campaigns.admin.permissions.can_view_channels",
                    },
                    {
                        "title": "Messages",
                        "icon": "mail",
                        "link": "/admin/campaigns/message/",
                        "permission": "campaigns.admin.permissions.can_view_messages",
                    },
                    {
                        "title": "Opt-outs",
                        "icon": "block",
                        "link": "/admin/campaigns/optout/",
                        "permission": "campaigns.admin.permissions.can_view_optouts",
                    },
                ],
            },
            {
                "title": "Campaigns",
                "items": [
                    {
                        "title": "Campaigns",
                        "icon": "campaign",
                        "link": "/admin/campaigns/campaign/",
                        "permission": "campaigns.admin.permissions.can_view_campaigns",
                    },
                    {
                        "title": "Audiences",
                        "icon": "groups",
                        "link": "/admin/campaigns/audience/",
                        "permission": "campaigns.admin.permissions.can_view_audiences",
                    },
                    {
                        "title": "Contacts",
                        "icon": "contacts",
                        "link": "/admin/campaigns/contact/",
                        "permission": "campaigns.admin.permissions.can_view_contacts",
                    },
                ],
            },
            {
                "title": "Integrations",
                "items": [
                    {
                        "title": "Service API keys",
                        "icon": "key",
                        "link": "/admin/campaigns/servicekey/",
                        "permission": "campaigns.admin.permissions.is_superuser",
                    },
                    {
                        "title": "Status webhooks",
                        "icon": "webhook",
                        "link": "/admin/campaigns/webhookendpoint/",
                        "permission": "campaigns.admin.permissions.can_view_webhooks",
                    },
                    {
                        "title": "Webhook deliveries",
                        "icon": "outbox",
                        "link": "/admin/campaigns/webhookdelivery/",
                        "permission": "campaigns.admin.permissions.can_view_webhook_deliveries",
                    },
                    {
                        "title": "API docs",
                        "icon": "api",
                        "link": "/api/v1/docs",
                        "permission": "campaigns.admin.permissions.is_superuser",
                    },
                ],
            },
            {
                "title": "Workers",
                "items": [
                    {
                        "title": "Queues (django-rq)",
                        "icon": "monitoring",
                        "link": "/django-rq/",
                        "permission": "campaigns.admin.permissions.is_superuser",
                    },
                ],
            },
        ],
    },
}

# django-import-export: importing needs the model's "add" permission, exporting "view".
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "add"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "notifier": {"handlers": ["console"], "level": env.str("NOTIFIER_LOG_LEVEL", "INFO")},
    },
}
# LOG_FORMAT=json: every line one JSON object (time, level, logger, message and the record's
# fields: a dispatch batch's channel, counts and message ids …), from Notifier, Django, RQ and
# the workers alike, for a log pipeline to index. The default stays plain text.
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: expected 'text' or 'json'")
if LOG_FORMAT == "json":
    LOGGING["formatters"] = {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",
        }
    }
    LOGGING["handlers"]["console"]["formatter"] = "json"
    # The root too, so Django's and RQ's own lines (RQ adds no handler of its own when one is
    # there) come out as JSON.
    LOGGING["root"] = {"handlers": ["console"], "level": "INFO"}
    LOGGING["loggers"]["notifier"]["propagate"] = False

# /metrics: Prometheus's scrape needs "Authorization: Bearer <METRICS_TOKEN>"; without a token
# the endpoint answers 404. A system check refuses a token shorter than 32 characters.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# --- ESP webhooks (django-anymail) -----------------------------------------------------------
# The basic-auth credentials ("user:password") ESPs must send to /anymail/<esp>/tracking/;
# comma-separated to accept an old and a new one while rotating. Without one the tracking
# webhooks answer 403 (campaigns.tracking.urls), and a mailer using an ESP stops the check.
ANYMAIL = {"WEBHOOK_SECRET": env.list("ANYMAIL_WEBHOOK_SECRET", default=[])}

# --- Channel secrets at rest ---------------------------------------------------------------
# Fernet keys that encrypt the secret options of channels in the database (channels.secrets);
# comma-separated, the first encrypts, all decrypt (rotation). Required unless DEBUG=1, where a
# key derived from SECRET_KEY stands in.
NOTIFIER_SECRET_KEYS = env.list("NOTIFIER_SECRET_KEYS", default=[])

# --- Content-Security-Policy -----------------------------------------------------------------
# A template slip that prints markup unescaped must not be able to run script. The end-user
# pages allow only the site's own files (htmx's inline indicator styles are turned off in
# notifier/base.html); a nonce is added where a template asks for one ({% csp_nonce_attr %}).
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "worker-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
}
_ADMIN_CSP = {
    **SECURE_CSP,
    # Alpine.js (unfold) evaluates x-* attributes with new Function: 'unsafe-eval'. Inline
    # script stays refused, so an injected <script> or on* attribute does not run; what keeps
    # injected x-* attributes out is escaping (Notifier marks nothing safe it did not escape).
    "script-src": [CSP.SELF, CSP.NONCE, CSP.UNSAFE_EVAL],
    # unfold writes inline <style> and style="" attributes (no nonce on them); email previews
    # (a sandboxed srcdoc iframe, which inherits this policy) load the web fonts, stylesheets
    # and images the HTML links to, as the recipient's mail client would.
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE, "https:"],
    "img-src": [CSP.SELF, "data:", "https:"],
    "font-src": [CSP.SELF, "data:", "https:"],
}
CSP_BY_NAMESPACE = {  # read by notifier_site.csp.PolicyByNamespaceMiddleware
    "admin": _ADMIN_CSP,
    # django-rq's pages (superusers only) use inline scripts and onclick handlers.
    "django_rq": {**_ADMIN_CSP, "script-src": [CSP.SELF, CSP.UNSAFE_EVAL, CSP.UNSAFE_INLINE]},
}

# --- HTTPS and proxies (production) ------------------------------------------------------------
# Each is off by default, so `make run` works over plain http; set them where the site is
# served over https (README, "Configuration"). `manage.py check --deploy` names what is missing.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
# Behind a TLS-terminating proxy: "HTTP_X_FORWARDED_PROTO,https" (the header and the value
# that means https; the proxy must set it and drop the client's).
SECURE_PROXY_SSL_HEADER = env.tuple("SECURE_PROXY_SSL_HEADER", default=None)
USE_X_FORWARDED_HOST = env.bool("USE_X_FORWARDED_HOST", default=False)
if SECURE_PROXY_SSL_HEADER and "NOTIFIER_TRUSTED_PROXY_COUNT" not in env:
    # Behind a proxy, the client is whom the proxy says (X-Forwarded-For), for throttling.
    NOTIFIER["TRUSTED_PROXY_COUNT"] = 1

# --- Login and API token throttling --------------------------------------------------------------
# django-axes counts failed logins (both login pages) per client address *and* username: after
# LOGIN_FAILURE_LIMIT failures, that pair is refused (429) until LOGIN_COOLOFF seconds have
# passed without another try. Another address, or another username, is not affected, so nobody
# can lock a user out by naming them. Bearer-token failures are counted per address in Redis
# (NOTIFIER["API_TOKEN_FAILURE_LIMIT"] and ["API_TOKEN_COOLOFF"], campaigns.recipients.throttle).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(seconds=env.int("LOGIN_COOLOFF", default=900))
AXES_LOCKOUT_PARAMETERS = [["ip_address", "username"]]
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # failures only: no table of every login
AXES_CLIENT_IP_CALLABLE = "campaigns.views.security.client_address"
AXES_LOCKOUT_CALLABLE = "campaigns.views.security.login_lockout_response"
