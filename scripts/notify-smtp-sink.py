#!/usr/bin/python3
"""A real SMTP server for the notify email tests, built on Debian's python3-aiosmtpd.

Listens on 127.0.0.1 (port 0 = any free port) and prints "READY <port>" once it accepts
connections. Modes: plain, starttls (STARTTLS required before MAIL), smtps (TLS from the first
byte). With --user/--password, AUTH is required (and never offered in plaintext). Each accepted
message is written to <dir>/NNNN.json: envelope, whether TLS was in use, the authenticated user,
the decoded headers and every text part decoded. Recipients starting with "blocked" are refused
with 550.

Install the dependency with scripts/notify-test-deps.sh.
"""

import argparse
import asyncio
import email
import email.policy
import json
import logging
import os
import ssl
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("blocked"):
            return "550 5.1.1 <%s>: mailbox unavailable" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        parts = []
        for part in message.walk():
            if part.get_content_maintype() == "text":
                parts.append({"content_type": part.get_content_type(), "body": part.get_content()})
        login = session.auth_data.login if session.authenticated else None
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "auth_user": login.decode() if isinstance(login, bytes) else login,
            "headers": {key: str(value) for key, value in message.items()},
            "content_type": message.get_content_type(),
            "parts": parts,
        }
        path = os.path.join(self.out_dir, "%04d.json" % self.count)
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(record, handle)
        os.replace(path + ".tmp", path)
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--mode", choices=["plain", "starttls", "smtps"], default="plain")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()
    # Under SMTPS aiosmtpd warns that AUTH does not require STARTTLS; the session is TLS anyway.
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    logging.getLogger("mail.log").setLevel(logging.ERROR)

    context = None
    if args.mode != "plain":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == args.user
            and auth_data.password.decode() == args.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    handler = Sink(args.dir)

    def factory():
        return SMTP(
            handler,
            hostname="sink.test",
            tls_context=context if args.mode == "starttls" else None,
            require_starttls=args.mode == "starttls",
            authenticator=authenticator if args.user else None,
            auth_required=bool(args.user),
            # Under SMTPS the whole session is encrypted; aiosmtpd only counts STARTTLS.
            auth_require_tls=args.mode != "smtps",
        )

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            factory,
            host="127.0.0.1",
            port=0,
            ssl=context if args.mode == "smtps" else None,
        )
        print("READY %d" % server.sockets[0].getsockname()[1], flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
