from campaigns.admin import (  # noqa: F401 - registers the admin classes
    addresses,
    campaigns,
    channels,
    decisions,
    events,
    messages,
    optouts,
    profiles,
    templates,
    tokens,
    users,
)
