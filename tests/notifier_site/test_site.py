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
    assert "unpkg" not in html and "cdn" not in html.lower()


def test_server_error_page_renders_without_a_request():
    assert "500 · Server error" in render_to_string("500.html")


def test_root_leads_to_the_admin(client, db):
    response = client.get("/")
    assert (response.status_code, response["Location"]) == (302, "/admin/")
