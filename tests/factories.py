from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from campaigns.content.versions import version_add
from campaigns.domain.composition import partials_used
from campaigns.models import Event, OptOut, Template
from channels.models import ChannelConfig


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    first_name = factory.Faker("first_name")
    is_active = True


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"event-{n}")
    name = factory.LazyAttribute(lambda o: o.key.replace("-", " ").title())
    variables = factory.LazyFunction(
        lambda: [{"name": "order_id", "label": "Order", "help": "Order number", "sample": "A-1"}]
    )


class ChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChannelConfig
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"channel-{n}")
    name = factory.LazyAttribute(lambda o: o.key)
    backend = "channels.backends.locmem.LocmemBackend"
    config = factory.LazyFunction(dict)


class TemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Template
        skip_postgeneration_save = True

    event = factory.SubFactory(EventFactory)
    channel = factory.SubFactory(ChannelFactory)
    language = "en"
    subject = "Order {{ order_id }} shipped"
    text_body = "Hello {{ recipient.name }}, order {{ order_id }} is on its way."
    html_body = ""

    @factory.post_generation
    def published(obj, create, extracted, **kwargs):
        """Published as v1 (what is sent), unless ``published=False``: a draft only."""
        if create and extracted is not False:
            template_publish_as_is(obj)


class OptOutFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OptOut


def email_channel(*, port: int, key: str = "email") -> ChannelConfig:
    channel, _ = ChannelConfig.objects.update_or_create(
        key=key,
        defaults={
            "name": "Email",
            "backend": "channels.backends.email.EmailBackend",
            "config": {
                "host": "127.0.0.1",
                "port": port,
                "timeout": 5,
                "from_email": "Shop <shop@example.com>",
            },
            "is_active": True,
        },
    )
    return channel


def memory_channel(key: str = "memory") -> ChannelConfig:
    return ChannelFactory(key=key, backend="channels.backends.locmem.LocmemBackend")


#: Credentials of the fake Twilio (tests/channels/backends/test_twilio.py's FakeTwilio).
TWILIO_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
TWILIO_AUTH_TOKEN = "twilio-auth-token-0001"


def sms_channel(*, base_url: str = "http://127.0.0.1:9", key: str = "sms") -> ChannelConfig:
    """An SMS channel (Twilio's API) pointed at ``base_url`` (a fake Twilio, or nowhere)."""
    channel, _ = ChannelConfig.objects.update_or_create(
        key=key,
        defaults={
            "name": "SMS",
            "backend": "channels.backends.sms.TwilioSmsBackend",
            "config": {
                "account_sid": TWILIO_ACCOUNT_SID,
                "auth_token": TWILIO_AUTH_TOKEN,
                "from_number": "+15005550006",
                "base_url": base_url,
                "track_delivery": "off",
            },
            "is_active": True,
        },
    )
    return channel


def template_publish_as_is(template: Template, *, note: str = ""):
    """Publish the template's draft as its next version without the admin's checks (a
    fixture's template need not meet a channel's limits)."""
    layout_version = None
    if template.layout_id:
        template.layout.refresh_from_db()  # its published version as it is now
        layout_version = template.layout.published
    sources = template.sources(layout_version=layout_version)
    return version_add(
        template,
        content=template.content(),
        layout_version=layout_version,
        partials=partials_used(sources, sources.partials),
        user=None,
        note=note,
    )
