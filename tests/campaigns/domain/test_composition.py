"""What a version compiles from: layouts, partials, the preheader, MJML with the site's own font,
the text part made from the HTML, and JSON bodies."""

from __future__ import annotations

import json

import pytest

from campaigns.domain.composition import Sources, partials_used
from campaigns.domain.rendering import TemplateError, compile_sources, template_render

MJML_LAYOUT = (
    "<mjml><mj-body><mj-section><mj-column><mj-text>SHOP HEADER</mj-text></mj-column>"
    "</mj-section>{% block content %}{% endblock %}<mj-section><mj-column>"
    '<mj-text>{% include "footer" %}</mj-text></mj-column></mj-section></mj-body></mjml>'
)
SECTION = "<mj-section><mj-column><mj-text>Order {{ order_id }}</mj-text></mj-column></mj-section>"


def render(sources: Sources, **context):
    return template_render(compile_sources(sources), context)


def test_a_template_fills_its_layouts_content_block_and_includes_partials():
    rendered = render(
        Sources(
            subject="Order {{ order_id }}",
            html=SECTION,
            text="Order {{ order_id }}",
            layout_html=MJML_LAYOUT,
            layout_text="SHOP\n{% block content %}{% endblock %}\n-- {% include 'footer' %}",
            partials={"footer": "Shop Ltd, {{ city }}"},
        ),
        order_id="<A-1>",
        city="Berlin",
    )
    html = rendered.html
    assert html.index("SHOP HEADER") < html.index("Order &lt;A-1&gt;") < html.index("Shop Ltd")
    assert "Shop Ltd, Berlin" in html
    assert rendered.text == "SHOP\nOrder <A-1>\n-- Shop Ltd, Berlin"


def test_an_include_with_values_and_partials_within_partials():
    rendered = render(
        Sources(
            text='{% include "button" with url=link label="Track" %}',
            partials={"button": "[{{ label }}]({{ url }}) {% include 'sig' %}", "sig": "— Shop"},
        ),
        link="https://x.example/1",
    )
    assert rendered.text == "[Track](https://x.example/1) — Shop"


@pytest.mark.parametrize(
    ("sources", "words"),
    [
        (Sources(text='{% include "nope" %}'), "no partial named 'nope'"),
        (Sources(text="{% include name %}"), "include a partial by its name in quotes"),
        (
            Sources(
                text='{% include "a" %}',
                partials={"a": '{% include "b" %}', "b": '{% include "a" %}'},
            ),
            "partials include each other in a circle: a → b → a",
        ),
        (Sources(text='{% include "a" only %}', partials={"a": "x"}), "partials see the whole"),
        (
            Sources(html="<p>x</p>", layout_html="<div>no block</div>"),
            "needs one {% block content %}",
        ),
        (
            Sources(text="{% include 'broken' %}", partials={"broken": "{% if x %}"}),
            "partial 'broken'",
        ),
    ],
)
def test_what_cannot_compose_is_named(sources, words):
    with pytest.raises(TemplateError) as raised:
        compile_sources(sources)
    assert words in str(raised.value)


def test_the_partials_a_version_keeps_are_those_it_includes():
    available = {"footer": "F {% include 'legal' %}", "legal": "L", "unused": "U"}
    sources = Sources(html='{% include "footer" %}', partials=available)
    assert partials_used(sources, available) == {"footer": available["footer"], "legal": "L"}


def test_the_preheader_is_the_hidden_first_line_of_the_html_in_mjml_and_in_html():
    for html in (
        SECTION.join(["<mjml><mj-body>", "</mj-body></mjml>"]),
        "<html><body><p>Hi</p></body></html>",
    ):
        rendered = render(Sources(html=html, preheader="Your {{ order_id }} <3"), order_id="A-1")
        assert 'data-preheader="" style="display:none' in rendered.html
        assert "Your A-1 &lt;3</div>" in rendered.html
        assert rendered.preheader == "Your A-1 <3"
        assert "Your A-1" not in rendered.text  # hidden: not in the text part made from it


def test_mjml_links_the_sites_own_font_and_no_font_service():
    compiled = compile_sources(
        Sources(html=SECTION.join(["<mjml><mj-body>", "</mj-body></mjml>"])),
        font_url="https://notifier.example/static/notifier/fonts/ubuntu.css",
    )
    html = template_render(compiled, {"order_id": "1"}).html
    assert "googleapis" not in html and "fonts.google" not in html
    assert '<link href="https://notifier.example/static/notifier/fonts/ubuntu.css"' in html


def test_the_text_part_is_made_from_the_html_with_its_tags_kept():
    """Left empty, the text part comes from the HTML template once per version: headings,
    links as [words](url), values unescaped as text is."""
    compiled = compile_sources(
        Sources(
            html=(
                "<h1>Order {{ order_id }}</h1><p>Hello {{ recipient.name }}, "
                '<a href="https://shop.example/o/{{ order_id }}">track it</a>.</p>'
                "{% if coupon %}<p>Coupon: {{ coupon }}</p>{% endif %}"
            )
        )
    )
    assert compiled.text_generated
    rendered = template_render(
        compiled, {"order_id": "A&1", "recipient": {"name": "Ann <ann>"}, "coupon": ""}
    )
    assert rendered.text == (
        "# Order A&1\n\nHello Ann <ann>, [track it](https://shop.example/o/A&1).\n"
    )
    assert "Ann &lt;ann&gt;" in rendered.html


def test_a_json_body_renders_values_json_escaped_and_is_parsed():
    rendered = render(
        Sources(
            body='{"name": "{{ name }}", "items": {{ count }}, "url": "{{ unsubscribe_url }}"}'
        ),
        name='Ann "A" \\ B\n',
        count=3,
        unsubscribe_url="https://x.example/u/1",
    )
    assert rendered.data == {"name": 'Ann "A" \\ B\n', "items": 3, "url": "https://x.example/u/1"}
    assert json.loads(rendered.body) == rendered.data
    with pytest.raises(TemplateError, match="the JSON body is not JSON"):
        render(Sources(body='{"n": {{ name }}}'), name="text, unquoted")


def test_a_compiled_template_knows_every_word_its_tags_mention():
    """A link is signed for a message when the template mentions it anywhere: in a layout,
    a partial or a condition (not only where it is printed)."""
    compiled = compile_sources(
        Sources(
            html="<p>x</p>",
            layout_html='{% block content %}{% endblock %}{% include "foot" %}',
            partials={"foot": "{% if preferences_url %}Manage{% endif %}"},
        )
    )
    assert "preferences_url" in compiled.words and "unsubscribe_url" not in compiled.words
