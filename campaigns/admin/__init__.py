from . import addresses, campaigns, events, messages, optouts, profiles, templates, tokens, users  # noqa: F401 - registers the admin classes
