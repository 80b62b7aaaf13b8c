"""``manage.py create_api_token alice --name "Alice's phone"``: a token for the inbox's JSON
API. It is printed once; only its hash is stored."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from campaigns.models import ApiToken


class Command(BaseCommand):
    help = "Create an API token for a user's inbox JSON API and print it (shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="what the token is for (a device, an app)")

    def handle(self, *args, username: str, name: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        _, raw = ApiToken.generate(user=user, name=name)
        self.stdout.write(raw)
