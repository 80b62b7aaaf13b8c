"""An SMTP server that accepts every message and keeps nothing, in a process of its own:
``python -m campaigns.bench.smtp_sink PORT``; prints "ready" once it listens, stops on
SIGTERM. The same server for raw smtplib and for Notifier, so their ratio is fair."""

from __future__ import annotations

import signal
import sys
import threading

from aiosmtpd.controller import Controller


class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 OK"


def main() -> None:
    port = int(sys.argv[1])
    controller = Controller(Sink(), hostname="127.0.0.1", port=port, server_hostname="sink.bench")
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
