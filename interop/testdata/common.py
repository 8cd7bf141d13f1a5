"""Shared parts of the slixmpp interop scripts.

A Client logs in to adhocd over STARTTLS with the server's self-signed
certificate as the only trusted CA, the JID's domain ("localhost") as the
host name checked while the TCP connection goes to the address given on the
command line, and SASL restricted to SCRAM (PLAIN is never used). It prints
the mechanism it logged in with and every SASL failure. main() parses the
common flags, runs a coroutine under an overall timeout and maps the
outcome to the exit status: 0 on success, 1 on any error, 2 on the timeout.
The federation scripts (s2s_*.py), with a user on each of two servers,
share their flags (federation_parser) and logins (federation_clients,
login_both); ContactWatch follows one contact's subscription, presence,
roster items and messages.

Lines on stdout every Client prints:

    MECHANISM <role> <SASL mechanism name>
    AUTH_FAILED <role> <SASL mechanism name> <condition>
    AUTH_FAILED_TEXT <role> <SASL mechanism name> <the failure's text, JSON>
        (after AUTH_FAILED, when the failure has a <text/>)

Scripts import this module after putting their own folder on sys.path.
"""

import asyncio
import json
import logging
import pathlib
import ssl
import sys
import traceback

import slixmpp

import flags

TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
SCRAM_MECHS = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1"}


def say(*words):
    """Print one result line for the Go test, at once."""
    print(*words, flush=True)


async def until(changed, test, seconds, why):
    """Wait until test() is true, checking it again whenever the
    asyncio.Event changed is set; after seconds in all, raise RuntimeError
    with why (a string, or a function that says what is still missing)."""
    async def wait():
        while not test():
            changed.clear()
            await changed.wait()
    try:
        await asyncio.wait_for(wait(), seconds)
    except asyncio.TimeoutError:
        raise RuntimeError(why() if callable(why) else why) from None


class Client(slixmpp.ClientXMPP):
    """A client that reports its SASL mechanism and signals session start.

    started is a future that is done once the session started (presence
    sent, and the roster fetched when roster is true), or fails with the
    reason the client could not get there. tls_max, one of TLS_VERSIONS'
    keys, caps the TLS version offered.
    """

    def __init__(self, role, jid, password, cafile, plugins=(), tls_max=None, roster=False):
        super().__init__(jid, password)
        self.role = role
        self.roster_at_start = roster
        for p in plugins:
            self.register_plugin(p)
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
        name = mech.name if mech else "?"
        say("AUTH_FAILED", self.role, name, stanza["condition"])
        if stanza["text"]:
            say("AUTH_FAILED_TEXT", self.role, name, json.dumps(stanza["text"]))

    def _on_disconnected(self, reason):
        self._fail("disconnected before session start: %s" % reason)

    async def _on_session_start(self, _event):
        self.send_presence()
        if self.roster_at_start:
            await self.get_roster()
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


class ContactWatch:
    """What a Client has seen of one contact, for until().

    It prints, as they come, every subscription request and approval,
    roster push (and the roster fetched at login), available and
    unavailable presence (but the server's echo of the client's own) and
    chat or normal message with a body, whoever sent it. Of those it keeps
    only what came from contact, a bare JID: subscribe and subscribed
    (bools), available and unavailable (sets of full JIDs) and messages
    (bodies, in order). contact may be None, and set later (after login,
    say): until then nothing is kept. role, when given, starts every line
    printed and every until() error; step is until()'s time limit, in
    seconds. Create it before login, so it sees the roster fetched then.

    Lines on stdout (with role first, when given):

        SUBSCRIBE <subscribe_words>     (by default the sender's bare JID)
        SUBSCRIBED <sender's bare JID>
        ROSTER <contact's bare JID> <subscription> <ask, or ->
        AVAILABLE <sender's full JID>
        UNAVAILABLE <sender's full JID>
        RECEIVED <received_words>       (by default the sender's bare JID
                                         and the body)

    A subclass changes what SUBSCRIBE and RECEIVED say by overriding
    subscribe_words and received_words.
    """

    def __init__(self, client, contact=None, role=None, step=20.0):
        self.client = client
        self.contact = contact
        self.role = role
        self.step = step
        self.changed = asyncio.Event()
        self.subscribe = False
        self.subscribed = False
        self.available = set()
        self.unavailable = set()
        self.messages = []
        client.add_event_handler("presence_subscribe", self._on_subscribe)
        client.add_event_handler("presence_subscribed", self._on_subscribed)
        client.add_event_handler("presence_available", self._on_available)
        client.add_event_handler("presence_unavailable", self._on_unavailable)
        client.add_event_handler("roster_update", self._on_roster)
        client.add_event_handler("message", self._on_message)

    def say(self, *words):
        """Print one line, role first when there is one."""
        if self.role is not None:
            words = (words[0], self.role) + words[1:]
        say(*words)

    def subscribe_words(self, pres):
        """What the SUBSCRIBE line says of a subscription request."""
        return (pres["from"].bare,)

    def received_words(self, msg):
        """What the RECEIVED line says of a message with a body."""
        return msg["from"].bare, msg["body"]

    def _mine(self, stanza):
        return self.contact is not None and stanza["from"].bare == self.contact

    def _on_subscribe(self, pres):
        self.say("SUBSCRIBE", *self.subscribe_words(pres))
        if self._mine(pres):
            self.subscribe = True
        self.changed.set()

    def _on_subscribed(self, pres):
        self.say("SUBSCRIBED", pres["from"].bare)
        if self._mine(pres):
            self.subscribed = True
        self.changed.set()

    def _on_available(self, pres):
        if pres["from"].bare == self.client.boundjid.bare:
            return  # the server's echo of our own presence
        self.say("AVAILABLE", pres["from"].full)
        if self._mine(pres):
            self.available.add(pres["from"].full)
        self.changed.set()

    def _on_unavailable(self, pres):
        if pres["from"].bare == self.client.boundjid.bare:
            return
        self.say("UNAVAILABLE", pres["from"].full)
        if self._mine(pres):
            self.unavailable.add(pres["from"].full)
        self.changed.set()

    def _on_roster(self, iq):
        # slixmpp's own roster_update handler (registered first) has
        # updated client_roster already.
        for jid, item in iq["roster"]["items"].items():
            self.say("ROSTER", str(jid), item["subscription"], item["ask"] or "-")
        self.changed.set()

    def _on_message(self, msg):
        # Chat states and receipts come without a body.
        if msg["type"] not in ("chat", "normal") or not msg["body"]:
            return
        self.say("RECEIVED", *self.received_words(msg))
        if self._mine(msg):
            self.messages.append(msg["body"])
        self.changed.set()

    def subscription(self):
        """The contact's subscription in the client's roster: both, to,
        from or none."""
        item = self.client.client_roster[self.contact]
        to, frm = bool(item["to"]), bool(item["from"])
        return {(True, True): "both", (True, False): "to", (False, True): "from"}.get((to, frm), "none")

    async def until(self, test, why):
        """until() on what this watch saw, within step seconds; the error
        says why (a string or a function), after role when given."""
        if self.role is not None:
            reason = why
            why = lambda: "%s: %s" % (self.role, reason() if callable(reason) else reason)  # noqa: E731
        await until(self.changed, test, self.step, why)


def parser(doc, logins=("",), jid_help=None, tls_max=False, timeout=30.0):
    """An argument parser with the flags every script takes.

    logins holds one prefix per account the script logs in with: each adds
    --<prefix>jid (whose help is jid_help) and --<prefix>password. tls_max
    adds --tls-max (for Client's tls_max); timeout is the default of
    --timeout, in seconds.
    """
    p = flags.parser(doc, logins, jid_help, timeout, "log slixmpp's XML to stderr")
    if tls_max:
        p.add_argument("--tls-max", choices=sorted(TLS_VERSIONS), help="highest TLS version to offer")
    return p


def federation_parser(doc, timeout):
    """The parser of a script with two users on two federated servers:
    user a on one (--host, --port, --cafile, --a-jid, --a-password), user b
    on the other (--b-host, --b-port, --b-cafile, --b-jid, --b-password),
    the bodies each sends (--a-body, --b-body), --tls-max, and --timeout
    (default timeout seconds)."""
    p = parser(doc, logins=("a-", "b-"), tls_max=True, timeout=timeout)
    p.add_argument("--b-host", required=True, help="b's server address")
    p.add_argument("--b-port", type=int, required=True)
    p.add_argument("--b-cafile", required=True, help="the certificate b trusts alone")
    p.add_argument("--a-body", required=True)
    p.add_argument("--b-body", required=True)
    return p


def federation_clients(args, plugins=()):
    """Users a and b of federation_parser's flags, as Clients with plugins,
    args.tls_max and the roster fetched at login; not connected yet (see
    login_both)."""
    a = Client("a", args.a_jid, args.a_password, args.cafile, plugins=plugins,
               tls_max=args.tls_max, roster=True)
    b = Client("b", args.b_jid, args.b_password, args.b_cafile, plugins=plugins,
               tls_max=args.tls_max, roster=True)
    return a, b


async def login_both(args, a, b):
    """Log a in to its server (--host, --port) and b to its own (--b-host,
    --b-port), at the same time; return once both sessions started."""
    await asyncio.gather(a.login(args.host, args.port), b.login(args.b_host, args.b_port))


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
