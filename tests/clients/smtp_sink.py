"""A real SMTP server for segl's notification tests (crates/cli/tests/e2e_notify.rs).

Runs aiosmtpd on a free loopback port and writes every message it accepts to
OUT_DIR/<n>.json as {"mail_from", "rcpt_tos", "from", "to", "subject", "message_id",
"content_type", "body", "data"}: the envelope, the headers decoded, the text body decoded
(whatever transfer encoding the sender chose) and the raw message. Each file is renamed
into place so a reader never sees half a file; the reply names it ("queued as sink-<n>"). Prints "smtp_sink listening on
127.0.0.1:PORT" once it accepts connections, then runs until killed.

Usage: smtp_sink.py OUT_DIR
"""

import asyncio
import email
import email.policy
import itertools
import json
import os
import socket
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.seq = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        n = next(self.seq)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(msg["From"]),
            "to": str(msg["To"]),
            "subject": str(msg["Subject"]),
            "message_id": str(msg["Message-ID"]),
            "content_type": msg.get_content_type(),
            "body": msg.get_content() if msg.get_content_maintype() == "text" else None,
            "data": envelope.content.decode("utf-8", errors="replace"),
        }
        tmp = os.path.join(self.out_dir, f".{n}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.out_dir, f"{n}.json"))
        return "250 2.0.0 Ok: queued as sink-%d" % n


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: smtp_sink.py OUT_DIR")
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    port = free_port()
    controller = Controller(Sink(out_dir), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"smtp_sink listening on 127.0.0.1:{port}", flush=True)
    try:
        asyncio.new_event_loop().run_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
