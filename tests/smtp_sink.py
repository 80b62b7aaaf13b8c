"""An SMTP server in a process of its own, for load tests: it appends each received
Message-ID to a file. ``python tests/smtp_sink.py PORT FILE``; stop it with SIGTERM. It offers
PIPELINING, as production servers do (the in-process test server does not, unless told)."""

import re
import signal
import sys
import threading

from aiosmtpd.controller import Controller

MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>]+>)", re.IGNORECASE | re.MULTILINE)


class Handler:
    def __init__(self, path: str):
        self.file = open(path, "ab", buffering=0)  # noqa: SIM115

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server, session, envelope):
        header = envelope.original_content.split(b"\r\n\r\n", 1)[0]
        self.file.write(MESSAGE_ID.search(header).group(1) + b"\n")
        return "250 2.0.0 OK queued"


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    controller = Controller(
        Handler(path), hostname="127.0.0.1", port=port, server_hostname="sink.test"
    )
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
