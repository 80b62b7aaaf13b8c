from campaigns.admin import (  # noqa: F401 - registers the admin classes
    addresses,
    campaigns,
    channels,
    decisions,
    events,
    layouts,
    messages,
    optouts,
    profiles,
    templates,
    tokens,
    users,
)
