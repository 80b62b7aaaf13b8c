import re

from django.contrib.auth.models import Group
from django.contrib.staticfiles import finders
from django.template.loader import render_to_string


def test_htmx_is_served_from_static_not_a_cdn(client, db):
    path = finders.find("notifier/vendor/htmx-2.0.11.min.js")
    assert path is not None
    with open(path, encoding="utf-8") as handle:
        assert handle.read(200).startswith("var htmx=")
    page = client.get("/no-such-page/")
    assert page.status_code == 404
    html = page.content.decode()
    assert "404 · Not found" in html
    assert "/static/notifier/vendor/htmx-2.0.11.min.js" in html
    # Every script and stylesheet comes from the site itself (a random token on the page may
    # hold the letters "cdn": only what the page loads is looked at).
    loaded = re.findall(r"<(?:script|link)\b[^>]*?\b(?:src|href)=[\"']([^\"']+)", html)
    assert loaded and all(url.startswith("/") and not url.startswith("//") for url in loaded), (
        loaded
    )


def test_server_error_page_renders_without_a_request():
    assert "500 · Server error" in render_to_string("500.html")


def test_root_leads_to_the_admin(client, db):
    response = client.get("/")
    assert (response.status_code, response["Location"]) == (302, "/admin/")


def _staff(client, django_user_model, role: str):
    user = django_user_model.objects.create_user(role, f"{role}@x.io", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return user


def test_a_refused_admin_page_keeps_the_admins_navigation(client, db, django_user_model):
    _staff(client, django_user_model, "Marketing")
    for path in ("/admin/campaigns/message/", "/django-rq/"):
        response = client.get(path)
        html = response.content.decode()
        assert response.status_code == 403, path
        assert 'id="nav-sidebar"' in html and 'href="/admin/campaigns/event/"' in html, path
        assert "403" in html and 'href="/admin/campaigns/message/"' not in html, path


def test_the_site_has_a_favicon(client, db):
    response = client.get("/favicon.ico")
    assert (response.status_code, response["Location"]) == (301, "/static/notifier/favicon.ico")
    with open(finders.find("notifier/favicon.ico"), "rb") as icon:
        assert icon.read(4) == b"\x00\x00\x01\x00"  # an ICO file
    assert finders.find("notifier/favicon.svg")
    for page in ("/accounts/login/", "/admin/login/"):
        html = client.get(page).content.decode()
        assert 'rel="icon"' in html and "/static/notifier/favicon.svg" in html, page
