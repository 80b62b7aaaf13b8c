"""Make sure a superuser exists whose login is known, and print it.

The password is ``$ADMIN_PASSWORD`` when set, else a new random one on every run (an existing
account gets its password reset), so the printed login always works. For development sites.
"""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.urls import reverse


class Command(BaseCommand):
    help = (
        "Create the superuser (default 'admin') if missing and set its password to "
        "$ADMIN_PASSWORD or a new random one; prints the login URL, username and password."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--email", default="admin@example.com")

    def handle(self, *args, username: str, email: str, **options):
        password = os.environ.get("ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            **{user_model.USERNAME_FIELD: username}, defaults={"email": email}
        )
        user.set_password(password)
        user.is_active = user.is_staff = user.is_superuser = True
        user.save(update_fields=["password", "is_active", "is_staff", "is_superuser"])
        login_url = settings.SITE_URL.rstrip("/") + reverse("admin:login")
        state = "created" if created else "password reset"
        self.stdout.write(f"admin login ({state}): {login_url}")
        self.stdout.write(f"  username: {username}")
        self.stdout.write(f"  password: {password}")
