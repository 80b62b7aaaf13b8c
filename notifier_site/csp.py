"""Content-Security-Policy per part of the site (Django's ``ContentSecurityPolicyMiddleware``
writes the header; this picks which policy).

The end-user pages get ``SECURE_CSP``: scripts and styles from the site's own files only, no
inline code, no eval. The admin (django-unfold) cannot live with that: Alpine.js evaluates its
``x-*`` attributes with ``new Function`` and unfold writes inline styles, so the admin's
namespace gets ``CSP_BY_NAMESPACE["admin"]``, and django-rq's pages, which carry inline scripts
and ``onclick`` handlers of their own, theirs. A view that sets its own policy
(``csp_override``) keeps it.
"""

from __future__ import annotations

from django.conf import settings


class PolicyByNamespaceMiddleware:
    """Put it below ``django.middleware.csp.ContentSecurityPolicyMiddleware``: the response
    passes here first, so the policy chosen here is the one that middleware writes."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        if match is None or hasattr(response, "_csp_config"):
            return response
        policies = getattr(settings, "CSP_BY_NAMESPACE", {})
        for namespace in match.namespaces:
            if namespace in policies:
                response._csp_config = policies[namespace]
                break
        return response
