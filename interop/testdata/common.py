"""Shared parts of the slixmpp interop scripts (not of slixmpp_message.py).

A Client logs in to adhocd the way slixmpp_message.py does: STARTTLS with the
server's self-signed certificate as the only trusted CA, the JID's domain
("localhost") as the host name checked while the TCP connection goes to the
address given on the command line, and SASL restricted to SCRAM (PLAIN is
never used). main() parses the common flags, runs a coroutine under an
overall timeout and maps the outcome to the exit status: 0 on success, 1 on
any error, 2 on the timeout.

Scripts import this module after putting their own folder on sys.path.
"""

import argparse
import asyncio
import logging
import pathlib
import ssl
import sys
import traceback

import slixmpp

SCRAM_MECHS = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1"}


def say(*words):
    """Print one result line for the Go test, at once."""
    print(*words, flush=True)


class Client(slixmpp.ClientXMPP):
    """A client that reports its SASL mechanism and signals session start.

    started is a future that is done once the session started (presence
    sent), or fails with the reason the client could not get there.
    """

    def __init__(self, role, jid, password, cafile, plugins=()):
        super().__init__(jid, password)
        self.role = role
        for p in plugins:
            self.register_plugin(p)
        self.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        # slixmpp loads this file into ssl_context when it starts TLS.
        self.ca_certs = pathlib.Path(cafile)
        self["feature_mechanisms"].use_mechs = set(SCRAM_MECHS)
        self.started = asyncio.get_running_loop().create_future()
        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("auth_success", self._on_auth_success)
        self.add_event_handler("failed_auth", self._on_failed_auth)
        self.add_event_handler("failed_all_auth", lambda _e: self._fail("no SASL mechanism worked"))
        self.add_event_handler("ssl_invalid_chain", lambda e: self._fail("certificate rejected: %s" % e))
        self.add_event_handler("connection_failed", lambda e: self._fail("connection failed: %s" % e))
        self.add_event_handler("disconnected", self._on_disconnected)

    def _fail(self, why):
        if not self.started.done():
            self.started.set_exception(RuntimeError("%s: %s" % (self.role, why)))

    def _on_auth_success(self, _stanza):
        say("MECHANISM", self.role, self["feature_mechanisms"].mech.name)

    def _on_failed_auth(self, stanza):
        mech = self["feature_mechanisms"].mech
        say("AUTH_FAILED", self.role, mech.name if mech else "?", stanza["condition"])

    def _on_disconnected(self, reason):
        self._fail("disconnected before session start: %s" % reason)

    async def _on_session_start(self, _event):
        self.send_presence()
        if not self.started.done():
            self.started.set_result(True)

    async def login(self, host, port):
        """Connect and wait for the session to start."""
        self.connect(address=(host, port), force_starttls=True)
        await self.started

    async def logout(self):
        """Disconnect cleanly and wait until the stream is closed."""
        self.del_event_handler("disconnected", self._on_disconnected)
        self.disconnect()
        await self.disconnected


def parser(doc):
    """An argument parser with the flags every script takes."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--debug", action="store_true", help="log slixmpp's XML to stderr")
    return p


def main(run, args):
    """Run the coroutine function run(args) under args.timeout and exit."""
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
