from campaigns.admin import (  # noqa: F401 - registers the admin classes
    addresses,
    campaigns,
    events,
    messages,
    optouts,
    profiles,
    templates,
    tokens,
    users,
)
