"""Creates the bench users in the shared database with Django's own make_password.

Usage: python seed.py PREFIX COUNT HASHER PASSWORD OUTFILE
One hash is computed (at the hasher's Django 6.1 default cost) and written for every user, so
seeding takes one hash, not COUNT; a login still verifies it at full cost.
"""

import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")
django.setup()

from django.contrib.auth.hashers import get_hasher, make_password  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402

prefix, count, hasher, password, outfile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
encoded = make_password(password, hasher=hasher)
names = [f"{prefix}-{n}" for n in range(count)]
User.objects.bulk_create([User(username=name, password=encoded, is_active=True) for name in names], batch_size=500)
with open(outfile, "w") as out:
    out.write("\n".join(names) + "\n")
print(f"{count} users, {encoded.split('$')[0]} ({get_hasher(hasher).__class__.__name__})", file=sys.stderr)
