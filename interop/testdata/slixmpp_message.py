#!/usr/bin/python3
"""Two slixmpp clients exchange one chat message through adhocd.

Run by interop/slixmpp_test.go with Debian's /usr/bin/python3 and
python3-slixmpp. The receiver logs in over STARTTLS with SCRAM, sends initial
presence and waits; once it is online, the sender logs in the same way, sends
presence and one chat message to the receiver's bare JID. Both clients share
one asyncio loop. The server's self-signed certificate is the only CA the
clients trust, and the host name checked is the JIDs' domain ("localhost"),
while the TCP connection goes to the address given on the command line.

--tls-max 1.2 exists because slixmpp 1.8.3 binds SCRAM-*-PLUS to tls-unique
only (CPython's ssl has no tls-exporter), and tls-unique is undefined in
TLS 1.3 (RFC 9266). Over TLS 1.3 it tries -PLUS with p=tls-unique, which the
server rejects, then plain SCRAM with the "y" flag, which a server offering
-PLUS must reject as a downgrade (RFC 5802, section 6), so it cannot log in
with SCRAM at all.

Lines on stdout the test reads:

    MECHANISM <role> <SASL mechanism name>
    AUTH_FAILED <role> <SASL mechanism name> <condition>
    RECEIVED <body>
    OK

Exits 0 only when the receiver got a chat message from the sender whose body
is exactly the one given; exits 1 on any error and 2 on the overall timeout.
"""

import argparse
import asyncio
import logging
import pathlib
import ssl
import sys
import traceback

import slixmpp

TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
SCRAM_MECHS = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1"}


def say(*words):
    print(*words, flush=True)


class Client(slixmpp.ClientXMPP):
    """A client that reports its SASL mechanism and signals session start."""

    def __init__(self, role, jid, password, cafile, tls_max):
        super().__init__(jid, password)
        self.role = role
        # A fresh context without the system CAs: verify the peer and its
        # host name against the server's own certificate only.
        self.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if tls_max:
            self.ssl_context.maximum_version = TLS_VERSIONS[tls_max]
        # slixmpp loads this file into ssl_context when it starts TLS.
        self.ca_certs = pathlib.Path(cafile)
        # Never fall back to PLAIN: only SCRAM (with or without -PLUS).
        self["feature_mechanisms"].use_mechs = set(SCRAM_MECHS)
        self.started = asyncio.get_running_loop().create_future()
        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("auth_success", self.on_auth_success)
        self.add_event_handler("failed_auth", self.on_failed_auth)
        self.add_event_handler("failed_all_auth", self.on_failed_all)
        self.add_event_handler("ssl_invalid_chain", self.on_bad_cert)
        self.add_event_handler("connection_failed", self.on_conn_failed)
        self.add_event_handler("disconnected", self.on_disconnected)

    def fail(self, why):
        if not self.started.done():
            self.started.set_exception(RuntimeError("%s: %s" % (self.role, why)))

    def on_auth_success(self, _stanza):
        say("MECHANISM", self.role, self["feature_mechanisms"].mech.name)

    def on_failed_auth(self, stanza):
        mech = self["feature_mechanisms"].mech
        say("AUTH_FAILED", self.role, mech.name if mech else "?", stanza["condition"])

    def on_failed_all(self, _event):
        self.fail("no SASL mechanism worked")

    def on_bad_cert(self, err):
        self.fail("certificate rejected: %s" % err)

    def on_conn_failed(self, err):
        self.fail("connection failed: %s" % err)

    def on_disconnected(self, reason):
        self.fail("disconnected before session start: %s" % reason)

    async def on_session_start(self, _event):
        self.send_presence()
        await self.get_roster()
        if not self.started.done():
            self.started.set_result(True)


async def run(args):
    receiver = Client("receiver", args.receiver_jid, args.receiver_password, args.cafile, args.tls_max)
    sender = Client("sender", args.sender_jid, args.sender_password, args.cafile, args.tls_max)
    got = asyncio.get_running_loop().create_future()

    def on_message(msg):
        if msg["type"] not in ("chat", "normal"):
            return
        if msg["from"].bare != sender.boundjid.bare:
            return
        say("RECEIVED", msg["body"])
        if not got.done():
            got.set_result(msg["body"])

    receiver.add_event_handler("message", on_message)

    receiver.connect(address=(args.host, args.port), force_starttls=True)
    await receiver.started
    sender.connect(address=(args.host, args.port), force_starttls=True)
    await sender.started

    sender.send_message(mto=receiver.boundjid.bare, mbody=args.body, mtype="chat")
    body = await got
    if body != args.body:
        raise RuntimeError("body mismatch: got %r, want %r" % (body, args.body))

    for c in (sender, receiver):
        c.del_event_handler("disconnected", c.on_disconnected)
        c.disconnect()
    await asyncio.gather(sender.disconnected, receiver.disconnected)
    say("OK")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--sender-jid", required=True)
    p.add_argument("--sender-password", required=True)
    p.add_argument("--receiver-jid", required=True)
    p.add_argument("--receiver-password", required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--tls-max", choices=sorted(TLS_VERSIONS), help="highest TLS version to offer")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--debug", action="store_true", help="log slixmpp's XML to stderr")
    args = p.parse_args()

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(asyncio.wait_for(run(args), args.timeout))
    except asyncio.TimeoutError:
        print("FAIL timeout after %.0fs" % args.timeout, file=sys.stderr, flush=True)
        sys.exit(2)
    except Exception as e:  # noqa: BLE001 - any failure is a test failure
        traceback.print_exc()
        print("FAIL %s: %s" % (type(e).__name__, e), file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
