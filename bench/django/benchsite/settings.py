"""The alternative to gatehouse a Django team would deploy: Django + DRF + simplejwt.

Configured from the environment by bench/run.py:
  BENCH_DATABASE_URL   sqlite:///path or postgres://user@host:port/db (gatehouse's database)
  BENCH_SIGNING_KEY    path of the PEM private key gatehouse signs with (RS256: the same key)
"""

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

from cryptography.hazmat.primitives import serialization


def database_from_url(url):
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": unquote(parsed.path)}
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parsed.path.lstrip("/"),
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": parsed.hostname or "",
        "PORT": str(parsed.port or ""),
        # Persistent connections, as a production deployment sets them.
        "CONN_MAX_AGE": 600,
    }


SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "benchsite.urls"
WSGI_APPLICATION = "benchsite.wsgi.application"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {"default": database_from_url(os.environ["BENCH_DATABASE_URL"])}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Writers wait for the lock as gatehouse's pool does, instead of failing at once.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30}

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
]
# An API-only deployment: no sessions, CSRF or messages middleware (the lightest Django can be).
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
# Django 6.1's default list; its PBKDF2PasswordHasher has 1,500,000 iterations, as gatehouse's
# --pbkdf2-iterations default (bench/run.py checks both).
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTAuthentication"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
}

_private_pem = Path(os.environ["BENCH_SIGNING_KEY"]).read_bytes()
_public_pem = (
    serialization.load_pem_private_key(_private_pem, password=None)
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
)
SIMPLE_JWT = {
    "ALGORITHM": "RS256",
    "SIGNING_KEY": _private_pem.decode(),
    "VERIFYING_KEY": _public_pem.decode(),
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=900),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=14),
    # The fair match for gatehouse's rotation in the database: every refresh returns a new
    # refresh token, and the old one is written to the blacklist.
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    # gatehouse sets last_login on every login, as Django's login() does.
    "UPDATE_LAST_LOGIN": True,
}
