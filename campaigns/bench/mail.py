"""email: building an email, and email end to end against raw smtplib.

(a) The CPU to build one text + HTML notification email through the email backend's own
build path, down to bytes (``build(...).message().as_bytes()``), median of ``--builds``.
(b) Raw smtplib against a local SMTP server (aiosmtpd, in a process of its own): ``--emails``
pre-built messages over ``--workers`` connections, one process each.
(c) Notifier end to end against the same server: one ``notify()`` to ``--emails`` recipients
on an SMTP channel with its default options (``connections``: 4 per worker), sent by
``--workers`` workers, from its commit to the last ``sent_at``.
The target: (c) reaches 80 % of (b). (b) and (c) are measured twice: against aiosmtpd as it
is, where every command waits for its reply, and against aiosmtpd offering PIPELINING, as
production servers do (smtplib does not use it; Notifier does).
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import sys
import threading
import uuid

from django.db.models import Max

from campaigns.api import notify
from campaigns.models import Message
from channels.backends.email import CONNECTIONS
from channels.models import ChannelConfig

from . import adapter, children
from .base import (
    PREFIX,
    Bench,
    BenchError,
    Skip,
    Timer,
    committed,
    event_with_template,
    free_port,
    median,
    rows_delete,
    wait_for,
)

SCENARIO = "email"
KEY = f"{PREFIX}email"
FROM = "Bench Shop <shop@bench.example>"
#: The issue's targets: building ≤ 0.3 ms; end to end ≥ 80 % of raw smtplib.
BUILD_MS, SHARE_OF_RAW = 0.3, 0.8

#: A typical transactional email: a non-ASCII subject, a text body, and an HTML body of a few
#: kB in the table layout email clients need.
EMAIL_TEMPLATE = {
    "subject": "Ihre Bestellung {{ order_id }} ist unterwegs \u2013 danke, {{ recipient.name }}!",
    "text_body": (
        "Hallo {{ recipient.name }},\n\n"
        "Ihre Bestellung {{ order_id }} über {{ total }} € ist unterwegs. Sie können die "
        "Sendung hier verfolgen: {{ tracking_url }}\n\n"
        "Artikel:\n{% for item in items %}"
        "- {{ item.name }} \u00d7 {{ item.qty }}: {{ item.price }} €\n"
        "{% endfor %}\nLieferadresse:\n{{ address }}\n\n"
        "Fragen? Antworten Sie einfach auf diese E-Mail.\n\nIhr Team vom Bench Shop"
    ),
    "html_body": (
        '<!doctype html><html lang="de"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width"><title>{{ order_id }}</title>'
        "<style>body{margin:0;padding:0;background:#f4f4f4;font-family:Arial,sans-serif}"
        ".wrap{max-width:600px;margin:0 auto;background:#fff}.btn{display:inline-block;"
        "padding:12px 24px;background:#0b5fff;color:#fff;text-decoration:none;"
        "border-radius:4px}td{padding:8px 16px;font-size:14px;color:#333}</style></head>"
        '<body><table role="presentation" class="wrap" width="100%" cellpadding="0" '
        'cellspacing="0"><tr><td style="padding:24px 16px;font-size:22px;font-weight:bold">'
        "Bench Shop</td></tr><tr><td>Hallo {{ recipient.name }},</td></tr><tr><td>Ihre "
        "Bestellung <b>{{ order_id }}</b> über <b>{{ total }} €</b> ist unterwegs.</td></tr>"
        '<tr><td><a class="btn" href="{{ tracking_url }}">Sendung verfolgen</a></td></tr>'
        '<tr><td><table role="presentation" width="100%" cellpadding="0" cellspacing="0">'
        "{% for item in items %}<tr><td>{{ item.name }}</td><td>\u00d7 {{ item.qty }}</td>"
        '<td style="text-align:right">{{ item.price }} €</td></tr>{% endfor %}</table>'
        "</td></tr><tr><td><b>Lieferadresse</b><br>{{ address|linebreaksbr }}</td></tr>"
        '<tr><td style="font-size:12px;color:#888">Fragen? Antworten Sie einfach auf diese '
        'E-Mail. <a href="{{ unsubscribe_url }}">Abmelden</a></td></tr></table></body></html>'
    ),
}
CONTEXT = {
    "order_id": "A-100123",
    "total": "149,90",
    "tracking_url": "https://shop.bench.example/track/A-100123?ref=email&lang=de",
    "address": "Erika Mustermann\nHauptstraße 5\n10115 Berlin",
    "items": [
        {"name": "Wanderschuhe „Gipfel“", "qty": 1, "price": "119,90"},
        {"name": "Socken (3 Paar)", "qty": 2, "price": "15,00"},
    ],
}
VARIABLES = [{"name": name, "label": name, "sample": ""} for name in CONTEXT]


def rendered_example() -> dict[str, str]:
    """The template above rendered for one recipient: what dispatch hands the backend."""
    items = CONTEXT["items"]
    lines = "".join(f"- {i['name']} \u00d7 {i['qty']}: {i['price']} €\n" for i in items)
    rows = "".join(
        f"<tr><td>{i['name']}</td><td>\u00d7 {i['qty']}</td>"
        f'<td style="text-align:right">{i["price"]} €</td></tr>'
        for i in items
    )
    html = EMAIL_TEMPLATE["html_body"]
    html = html.split("{% for item in items %}")[0] + rows + html.split("{% endfor %}")[1]
    text = EMAIL_TEMPLATE["text_body"]
    text = text.split("{% for item in items %}")[0] + lines + text.split("{% endfor %}")[1]
    values = {
        "{{ recipient.name }}": "Erika Mustermann",
        "{{ address|linebreaksbr }}": CONTEXT["address"].replace("\n", "<br>"),
        "{{ unsubscribe_url }}": "https://notify.bench.example/unsubscribe/token/",
        **{f"{{{{ {k} }}}}": str(v) for k, v in CONTEXT.items()},
    }
    subject = EMAIL_TEMPLATE["subject"]
    for placeholder, value in values.items():
        subject = subject.replace(placeholder, value)
        text = text.replace(placeholder, value)
        html = html.replace(placeholder, value)
    return {"subject": subject, "text": text, "html": html}


def run(bench: Bench) -> None:
    if importlib.util.find_spec("aiosmtpd") is None:
        raise Skip("aiosmtpd is not installed (it comes with: pip install -e '.[dev]')")
    options = bench.options
    backend = adapter.email_backend({"from_email": FROM})
    message = adapter.outgoing(
        uuid=str(uuid.uuid4()),
        address="erika@bench.example",
        unsubscribe_url="https://notify.bench.example/unsubscribe/token/",
        **rendered_example(),
    )
    raw = adapter.email_bytes(backend, message)
    for _ in range(20):
        adapter.email_bytes(backend, message)
    cpu = []
    for _ in range(options.builds):
        with Timer() as timer:
            adapter.email_bytes(backend, message)
        cpu.append(timer.cpu * 1000)
    bench.figure(
        SCENARIO,
        "build_cpu",
        median(cpu),
        "ms",
        f"building one text + HTML email ({len(raw)} bytes), CPU (median)",
        target=BUILD_MS,
        sense="max",
    )

    for pipelining in (False, True):
        _end_to_end(bench, raw, pipelining=pipelining)
        rows_delete()  # the next server's run starts from an empty table, as this one did


#: The two servers: aiosmtpd as it is (each command waits for its reply) and aiosmtpd
#: offering PIPELINING (RFC 2920), as production MTAs and the ESPs' relays do. smtplib never
#: pipelines; Notifier does where the server offers it.
SERVERS = {False: ("", "a server without PIPELINING"), True: ("_pipelining", "PIPELINING")}


def _end_to_end(bench: Bench, raw: bytes, *, pipelining: bool) -> None:
    """(b) and (c) against one SMTP server, a process of its own for both."""
    options = bench.options
    suffix, server = SERVERS[pipelining]
    port = free_port()
    argv = [sys.executable, "-m", "campaigns.bench.smtp_sink", str(port)]
    sink = bench.spawn([*argv, "--pipelining"] if pipelining else argv, name=f"smtp-sink{suffix}")

    def sink_check() -> None:
        if sink.poll() is not None:
            raise BenchError(f"the SMTP sink exited:\n{bench.log_tail(sink)}")

    wait_for(
        lambda: "ready" in bench.log_tail(sink),
        timeout=60,
        what="the SMTP sink",
        check=sink_check,
    )
    raw_rate = _raw(bench, port, raw, options.emails)
    bench.figure(
        SCENARIO,
        f"raw_smtplib{suffix}",
        raw_rate,
        "msg/s",
        f"raw smtplib, {options.emails} pre-built emails over {options.workers} connections, "
        f"{server}",
    )

    key = f"{KEY}{suffix}"
    channel = ChannelConfig.objects.create(
        key=key,
        name=f"Benchmark (SMTP sink{', pipelining' if pipelining else ''})",
        backend=adapter.EMAIL_BACKEND,
        config={"host": "127.0.0.1", "port": port, "from_email": FROM, "timeout": 30},
    )
    event_with_template(key, channel, variables=VARIABLES, **EMAIL_TEMPLATE)
    people = [
        {"email": f"e{i}@bench.example", "name": f"Erika {i}", "language": "en"}
        for i in range(options.emails)
    ]
    with bench.workers() as workers:
        result, at = committed(lambda: notify(key, people, CONTEXT))
        if len(result.messages) != len(people):
            raise BenchError(f"notify() wrote {len(result.messages)} of {len(people)} emails")
        messages = Message.objects.filter(event__key=key)  # a poll cheaper than 20,000 ids

        def done() -> bool:
            sink_check()
            return messages.filter(status__in=["sent", "failed", "broken"]).count() == len(people)

        wait_for(
            done,
            timeout=options.timeout,
            what=f"{len(people)} emails",
            interval=0.5,  # the end is the last sent_at; a poll only costs the machine
            check=workers.check,
        )
    sent = messages.filter(status="sent")
    count = sent.count()
    if count != len(people):
        error = messages.exclude(status="sent").values_list("last_error", flat=True).first()
        raise BenchError(f"{len(people) - count} of {len(people)} emails failed: {error}")
    last = sent.aggregate(end=Max("sent_at"))["end"].timestamp()
    rate = count / (last - at)
    bench.figure(
        SCENARIO,
        f"end_to_end{suffix}",
        rate,
        "msg/s",
        f"Notifier, {count} emails by {options.workers} workers ({CONNECTIONS} connections "
        f"each, the default), commit to last sent, {server}",
        target=306,
        sense="ref",
    )
    bench.figure(
        SCENARIO,
        f"share_of_raw{suffix}",
        rate / raw_rate,
        "x",
        f"Notifier end to end / raw smtplib, {server} (target: 80%)",
        target=SHARE_OF_RAW,
        sense="min",
    )
    bench.stop(sink)


def _raw(bench: Bench, port: int, message: bytes, count: int) -> float:
    streams = max(1, bench.options.workers)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(streams + 1)
    results = context.Queue()
    shares = [count // streams + (1 if i < count % streams else 0) for i in range(streams)]
    processes = [
        context.Process(
            target=children.smtp_stream,
            args=("127.0.0.1", port, number, share, message, barrier, results),
            daemon=True,
        )
        for number, share in enumerate(shares)
    ]
    try:
        for process in processes:
            process.start()
        try:
            barrier.wait(timeout=120)
        except threading.BrokenBarrierError:
            error = results.get(timeout=10)[2] if not results.empty() else "no error reported"
            raise BenchError(f"an smtplib stream failed to start: {error}") from None
        outcomes = [results.get(timeout=bench.options.timeout) for _ in processes]
        failed = [str(o[2]) for o in outcomes if o[1] < 0]
        if failed:
            raise BenchError(f"an smtplib stream failed: {'; '.join(failed)}")
        return sum(o[1] for o in outcomes) / max(o[2] for o in outcomes)
    except BaseException:
        for process in processes:  # no waiting for a stream that lost its parent's interest
            if process.is_alive():
                process.kill()
        raise
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
