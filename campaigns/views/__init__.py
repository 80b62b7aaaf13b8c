"""End-user pages: the inbox (and its JSON API), the preference centre, unsubscribe links.

Views parse the request, call a service from ``campaigns.services`` and render; with htmx
(``request.htmx``) they answer with the fragment that changed, without it with a redirect,
so every page works without JavaScript.
"""
