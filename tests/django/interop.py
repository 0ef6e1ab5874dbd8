"""Real Django, pointed at the database a gatehouse test prepared.

Usage: DJANGO_DATABASE_URL=sqlite:///path | postgres://user@host:port/db python interop.py COMMAND [ARGS]
Each command prints one JSON document on stdout.
"""

import io
import json
import sys
from urllib.parse import unquote, urlparse

import django
from django.conf import settings

PASSWORD = "correct horse \u2603"
HASHERS = ["pbkdf2_sha256", "pbkdf2_sha1", "argon2", "bcrypt_sha256", "bcrypt", "scrypt", "md5"]


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
    }


def configure(url):
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
        DATABASES={"default": database_from_url(url)},
        # Django >= 6.0's default; makes 5.2 build the same M2M id types as 6.1.
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        USE_TZ=True,
        PASSWORD_HASHERS=[
            "django.contrib.auth.hashers.PBKDF2PasswordHasher",
            "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
            "django.contrib.auth.hashers.Argon2PasswordHasher",
            "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
            "django.contrib.auth.hashers.BCryptPasswordHasher",
            "django.contrib.auth.hashers.ScryptPasswordHasher",
            "django.contrib.auth.hashers.MD5PasswordHasher",
        ],
    )
    django.setup()


def migrate():
    """Runs Django's migrate and reports what it had to apply."""
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    out = io.StringIO()
    call_command("migrate", interactive=False, stdout=out, verbosity=1)
    return {"plan": [f"{m.app_label}.{m.name}" for m, _ in plan], "output": out.getvalue()}


def create_users():
    """One user per hasher Django ships, with Django's own make_password."""
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User

    created = []
    for alg in HASHERS:
        user = User.objects.create_user(username=f"dj_{alg}", email=f"dj_{alg}@Example.ORG")
        user.password = make_password(PASSWORD, hasher=alg)
        user.save()
        created.append({"username": user.username, "algorithm": alg, "password": PASSWORD, "id": user.id})
    return created


def authenticate(username, password):
    from django.contrib.auth import authenticate as django_authenticate

    user = django_authenticate(username=username, password=password)
    return {"ok": user is not None, "id": getattr(user, "id", None)}


def date_filters(username):
    """Django's string-compared datetime filters on rows gatehouse wrote."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    now = timezone.now()
    users = User.objects.filter(username=username)
    return {
        "date_joined_lte_now": users.filter(date_joined__lte=now).count(),
        "last_login_lte_now": users.filter(last_login__lte=now).count(),
        "last_login_isnull": users.filter(last_login__isnull=True).count(),
        "groups": sorted(g.name for u in users for g in u.groups.all()),
    }


def main(argv):
    import os

    configure(os.environ["DJANGO_DATABASE_URL"])
    command, args = argv[1], argv[2:]
    result = {
        "migrate": migrate,
        "create-users": create_users,
        "authenticate": authenticate,
        "date-filters": date_filters,
    }[command](*args)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main(sys.argv)
