"""An accessibility check of the page a browser shows: axe-core (vendored from npm in
static/notifier/vendor, with its license) loaded from the live server like any of the site's
own scripts, so the page's Content-Security-Policy holds while it runs."""

from __future__ import annotations

AXE = "/static/notifier/vendor/axe-4.14.1.min.js"
#: What fails a page: violations axe rates serious or critical.
BLOCKING = ("serious", "critical")

# Fonts first: until the admin's icon font has loaded, an icon is its ligature's name in grey
# text (the sidebar's "manage_search"), which axe would rightly call unreadable.
RUN = """async () => {
  await document.fonts.ready;
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + ": " + n.failureSummary),
  }));
}"""


def axe_violations(page) -> list[dict]:
    """Every violation axe finds on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(url=AXE)
    return page.evaluate(RUN)


def assert_accessible(page) -> None:
    """No serious or critical violation on the page as it is now."""
    blocking = [v for v in axe_violations(page) if v["impact"] in BLOCKING]
    assert blocking == [], "\n".join(
        f"{v['impact']}: {v['id']} ({v['help']})\n    " + "\n    ".join(v["nodes"])
        for v in blocking
    )
