"""An SMTP server that accepts every message and keeps nothing, in a process of its own:
``python -m campaigns.bench.smtp_sink PORT [--pipelining]``; prints "ready" once it listens,
stops on SIGTERM. The same server for raw smtplib and for Notifier, so their ratio is fair.

aiosmtpd reads a connection's commands in order, so it serves pipelined ones as they come;
``--pipelining`` has it say so in its EHLO reply (RFC 2920), as Postfix, Exim and the ESPs'
relays do, and clients that can then write a message's envelope in one go."""

from __future__ import annotations

import signal
import sys
import threading

from aiosmtpd.controller import Controller


class PipeliningOffer:
    """An aiosmtpd handler's EHLO: PIPELINING offered when its ``pipelining`` is set."""

    pipelining = False

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses


class Sink(PipeliningOffer):
    def __init__(self, *, pipelining: bool = False):
        self.pipelining = pipelining

    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 OK"


def main() -> None:
    port = int(sys.argv[1])
    handler = Sink(pipelining="--pipelining" in sys.argv[2:])
    controller = Controller(handler, hostname="127.0.0.1", port=port, server_hostname="sink.bench")
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
