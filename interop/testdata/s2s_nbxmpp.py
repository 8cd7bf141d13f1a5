#!/usr/bin/python3
"""A Gajim user on one server and a user of a federated server become contacts and chat, with nbxmpp.

Run by interop/s2s_nbxmpp_test.go with Debian's /usr/bin/python3 and
python3-nbxmpp 4.2.2 (Gajim 1.7's library), on a GLib main loop. Two nbxmpp
clients in one loop, each logged in as nbxmpp_common.py does (STARTTLS, only
the certificate in its file accepted, nbxmpp's SASL mechanisms): user a on
adhocd (--host, --port, --cafile), user b on the federation peer (--b-host,
--b-port, --b-cafile). Each starts its session as Gajim 1.7 does
(gajim/common/client.py: _on_connected, connect_machine, _finish_connect):
disco#info of its server, the roster (nbxmpp's Roster.request_roster with
the empty version Gajim starts from), then initial presence.

Both read stanzas where Gajim's modules read them, after nbxmpp's own
handlers, from the properties nbxmpp parsed: presence of types subscribe
and subscribed at priority 49, available and unavailable at 50 (Gajim's
Presence module), roster pushes (Gajim's Roster module: the item nbxmpp
parsed and acknowledged) and chat messages (Gajim's Message module). Nothing
is answered automatically (Gajim's autoauth is off).

Then, over the servers' server-to-server streams (RFC 6120 §4):

 1. a adds b as Gajim's Presence.subscribe does (RFC 6121 §3.1.1): a
    roster set of b's bare JID, then presence of type subscribe with a's
    nickname (XEP-0172), without waiting for the roster result in between.
 2. b gets the request, with the nickname, and answers as a user who
    accepts it and adds a back: presence of type subscribed, then the same
    roster set and subscribe as a did.
 3. a sees the approval, a roster push of b with subscription to (or
    both), and b's available presence (RFC 6121 §3.1.5); then b's request,
    which a approves (Gajim's "Accept": presence of type subscribed).
 4. b sees the approval and a's available presence; both rosters must then
    say both for the other, with no request pending.
 5. a sends --a-body to b's bare JID, as Gajim's build_message_stanza
    makes a chat message (id and origin-id, receipt request, markable); b,
    once it got exactly that, sends --b-body back the same way; a must get
    exactly that.
 6. a fetches its roster again (what the next login would show): b with
    subscription both.
 7. a goes offline as Gajim does (presence of type unavailable, then the
    stream closed); b must get a's unavailable presence (RFC 6121 §4.5.2).

Lines on stdout the test reads:

    LOGIN <role> <bound JID> <SASL mechanism>
    DISCO <role> <own server JID> <number of features>
    ROSTER <role> <fetch|push> <contact's bare JID> <subscription> <ask, or ->
        (each item of a roster fetched, and each push)
    SUBSCRIBE <role> <sender's bare JID> <nickname, or ->
    SUBSCRIBED <role> <sender's bare JID>
    AVAILABLE <role> <sender's full JID>
    UNAVAILABLE <role> <sender's full JID>
    RECEIVED <role> <sender's bare JID> <body>
    MESSAGE_ERROR <role> <sender> <condition>
    ERROR <label> {"class", "condition", "text"}
    OK

A step that does not come out as said within its time ends the run (FAIL on
stderr). Exits 0 when every step ran, 1 on any other error, 2 on the overall
timeout.
"""

import os
import sys

# nbxmpp_common.py sits next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gi.repository import Gio  # noqa: E402

import nbxmpp  # noqa: E402
from nbxmpp.const import ConnectionProtocol, ConnectionType  # noqa: E402
from nbxmpp.namespaces import Namespace  # noqa: E402
from nbxmpp.protocol import Presence  # noqa: E402
from nbxmpp.structs import StanzaHandler  # noqa: E402
from nbxmpp.util import generate_id  # noqa: E402

import nbxmpp_common as common  # noqa: E402
from nbxmpp_common import say  # noqa: E402

STEP = 20  # seconds one step may take, the first s2s stream's set-up included
NICK = {"a": "Alice (Gajim)", "b": "Bob"}


def _or_dash(value):
    return value if value else "-"


class Session(common.Session):
    """One nbxmpp client, on its own server, and what Gajim's modules would
    have seen of the other user."""

    def __init__(self, run, role, jid, password, host, port, cafile):
        super().__init__(run, jid, password, "gajim-" + role, role=role)
        # Each user on its own server: the custom host and the certificate
        # accepted set again for this one (nbxmpp_common uses --host and
        # --cafile).
        self.client.set_custom_host("%s:%d" % (host, port), ConnectionProtocol.TCP, ConnectionType.START_TLS)
        self.client.set_accepted_certificates([Gio.TlsCertificate.new_from_file(cafile)])
        self.other = None  # the other user's bare JID, a string
        self.roster = {}  # bare JID -> RosterItem, from the fetch and the pushes
        self.subscribe_nick = None  # the nickname of the other's request, once it came
        self.subscribed = False
        self.available = set()
        self.unavailable = set()
        self.messages = []
        c = self.client
        for typ, prio in (("subscribe", 49), ("subscribed", 49), ("available", 50), ("unavailable", 50)):
            c.register_handler(StanzaHandler(name="presence", callback=self._on_presence, typ=typ, priority=prio))
        c.register_handler(StanzaHandler(name="iq", callback=self._on_roster_push, typ="set", ns=Namespace.ROSTER))
        c.register_handler(StanzaHandler(name="message", callback=self._on_message, priority=50))

    def _mine(self, jid):
        return self.other is not None and jid is not None and str(jid.new_as_bare()) == self.other

    def _on_presence(self, _client, _stanza, properties):
        if properties.is_self_bare:
            return  # the server's echo of our own presence
        jid = properties.jid
        bare = str(jid.new_as_bare())
        t = properties.type
        if t.is_subscribe:
            say("SUBSCRIBE", self.role, bare, _or_dash(properties.nickname))
            if self._mine(jid):
                self.subscribe_nick = properties.nickname or ""
        elif t.is_subscribed:
            say("SUBSCRIBED", self.role, bare)
            if self._mine(jid):
                self.subscribed = True
        elif t.is_unavailable:
            say("UNAVAILABLE", self.role, str(jid))
            if self._mine(jid):
                self.unavailable.add(str(jid))
        elif t.is_available:
            say("AVAILABLE", self.role, str(jid))
            if self._mine(jid):
                self.available.add(str(jid))
        self.run.poke()
        if t.is_subscribe or t.is_subscribed:
            raise nbxmpp.NodeProcessed  # as Gajim's Presence module does

    def _on_roster_push(self, _client, _stanza, properties):
        if properties.roster is None:
            return  # nbxmpp refused it (not from our account)
        self.note_roster("push", properties.roster.item)
        self.run.poke()
        raise nbxmpp.NodeProcessed  # as Gajim's Roster module does

    def note_roster(self, how, item):
        say("ROSTER", self.role, how, str(item.jid), item.subscription, _or_dash(item.ask))
        if item.subscription == "remove":
            self.roster.pop(str(item.jid), None)
        else:
            self.roster[str(item.jid)] = item

    def _on_message(self, _client, stanza, properties):
        if properties.is_mam_message or properties.is_pubsub or properties.is_carbon_message:
            return
        if properties.type.value == "error":
            say("MESSAGE_ERROR", self.role, str(properties.jid), _or_dash(stanza.getError()))
            self.run.poke()
            return
        if not properties.body:
            return  # receipts, chat states, markers
        say("RECEIVED", self.role, str(properties.jid.new_as_bare()), properties.body)
        if self._mine(properties.jid):
            self.messages.append(properties.body)
        self.run.poke()

    def subscription(self):
        """The roster's subscription to the other user, and its ask."""
        item = self.roster.get(self.other)
        if item is None:
            return None, None
        return item.subscription, item.ask


class Run(common.Run):
    """The steps."""

    def __init__(self, args, loop):
        super().__init__(args, loop)
        self.fired = {}  # label -> the result of a task not waited for
        self._callbacks = []  # nbxmpp holds task callbacks weakly

    def logged_in(self, session):
        say("LOGIN", session.role, session.client.get_bound_jid(), common.mechanism(session.client))

    def expect(self, what, test):
        """Wait until test() is true; after STEP seconds fail with what."""
        ok = yield self.wait(test, STEP, lambda: False)
        if not ok:
            raise RuntimeError("after %ds: %s" % (STEP, what))

    def fire(self, label, start):
        """Start an nbxmpp task without waiting for it, as Gajim does;
        its result (or exception) goes to fired[label]."""
        def on_done(task):
            try:
                self.fired[label] = task.finish()
            except Exception as e:  # noqa: BLE001 - any failure is reported
                self.fired[label] = e
                self.error(label, e)
            self.poke()
        self._callbacks.append(on_done)
        start(callback=on_done, timeout=common.TASK_TIMEOUT)

    def login(self, role, jid, password, host, port, cafile):
        """Log in and start the session as Gajim does."""
        s = Session(self, role, jid, password, host, port, cafile)
        self.sessions.append(s)
        yield self.connect(s)
        domain = s.client.get_bound_jid().domain
        disco = s.client.get_module("Discovery")
        info = yield from self.run(role + " disco", lambda **kw: disco.disco_info(domain, **kw))
        if info is None:
            raise RuntimeError("%s: no disco#info of %s" % (role, domain))
        say("DISCO", role, domain, len(info.features))
        yield from self.fetch_roster(s)
        # Gajim's update_presence: show and status from the account's state.
        s.client.get_module("BasePresence").send(priority=0)
        return s

    def fetch_roster(self, s):
        roster = s.client.get_module("Roster")
        data = yield from self.run(s.role + " roster", lambda **kw: roster.request_roster("", **kw))
        if data is None:
            raise RuntimeError("%s: no roster" % s.role)
        if data.items is not None:
            s.roster.clear()
            for item in data.items:
                s.note_roster("fetch", item)

    def add_contact(self, user, contact_jid):
        """Gajim's Presence.subscribe: the roster item set, then the
        request with the user's nickname, one right after the other."""
        self.fire(user.role + " set_item", lambda **kw: user.client.get_module("Roster").set_item(contact_jid, None, **kw))
        user.client.get_module("BasePresence").subscribe(contact_jid, nick=NICK[user.role])

    @staticmethod
    def send(src, to, body):
        """Send a chat message as Gajim's build_message_stanza makes it."""
        msg = nbxmpp.Message(to=to, body=body, typ="chat")
        id_ = generate_id()
        msg.setID(id_)
        msg.setOriginID(id_)
        msg.setReceiptRequest()
        msg.setMarkable()
        src.client.send_stanza(msg)

    def steps(self):
        args = self.args
        a = yield from self.login("a", args.a_jid, args.a_password, args.host, args.port, args.cafile)
        b = yield from self.login("b", args.b_jid, args.b_password, args.b_host, args.b_port, args.b_cafile)
        a.other = str(b.client.get_bound_jid().new_as_bare())
        b.other = str(a.client.get_bound_jid().new_as_bare())

        # 1-2. a asks; b accepts and asks back.
        self.add_contact(a, a.other)
        yield from self.expect("b: no subscription request from " + b.other, lambda: b.subscribe_nick is not None)
        if b.subscribe_nick != NICK["a"]:
            raise RuntimeError("b: the request's nickname is %r, want %r" % (b.subscribe_nick, NICK["a"]))
        b.client.get_module("BasePresence").subscribed(b.other)
        self.add_contact(b, b.other)

        # 3. a sees the approval, b in its roster, b online; approves b.
        yield from self.expect("a: no approval from " + a.other, lambda: a.subscribed)
        yield from self.expect("a: no roster push with a subscription to " + a.other,
                               lambda: a.subscription()[0] in ("to", "both"))
        yield from self.expect("a: no available presence of " + a.other, lambda: a.available)
        yield from self.expect("a: no subscription request from " + a.other, lambda: a.subscribe_nick is not None)
        if a.subscribe_nick != NICK["b"]:
            raise RuntimeError("a: the request's nickname is %r, want %r" % (a.subscribe_nick, NICK["b"]))
        a.client.get_module("BasePresence").subscribed(a.other)

        # 4. b sees the approval and a online; both rosters say both.
        yield from self.expect("b: no approval from " + b.other, lambda: b.subscribed)
        yield from self.expect("b: no available presence of " + b.other, lambda: b.available)
        for s in (a, b):
            yield from self.expect("%s: the roster says %s for %s, want both and no ask" % (s.role, s.subscription(), s.other),
                                   lambda s=s: s.subscription() == ("both", None))
        for label in ("a set_item", "b set_item"):
            yield from self.expect("%s: no result" % label, lambda label=label: label in self.fired)
            if isinstance(self.fired[label], Exception):
                raise RuntimeError("%s failed: %s" % (label, self.fired[label]))

        # 5. A message each way.
        self.send(a, a.other, args.a_body)
        yield from self.expect("b: no message from " + b.other, lambda: b.messages)
        if b.messages != [args.a_body]:
            raise RuntimeError("b got %r, want %r" % (b.messages, [args.a_body]))
        self.send(b, b.other, args.b_body)
        yield from self.expect("a: no message from " + a.other, lambda: a.messages)
        if a.messages != [args.b_body]:
            raise RuntimeError("a got %r, want %r" % (a.messages, [args.b_body]))

        # 6. a's roster as the server keeps it.
        yield from self.fetch_roster(a)
        if a.subscription() != ("both", None):
            raise RuntimeError("a: the roster fetched says %s for %s, want both" % (a.subscription(), a.other))

        # 7. a goes offline; b sees it.
        a.on_disconnected = lambda: None
        a.leaving = True
        a.client.send_stanza(Presence(typ="unavailable"))
        a.client.disconnect()
        yield from self.expect("b: no unavailable presence of " + b.other, lambda: b.unavailable)


def main():
    p = common.parser(__doc__, logins=("a-", "b-"), jid_help="a bare JID", timeout=90.0)
    p.add_argument("--b-host", required=True, help="b's server address")
    p.add_argument("--b-port", type=int, required=True)
    p.add_argument("--b-cafile", required=True, help="the certificate b accepts alone")
    p.add_argument("--a-body", required=True)
    p.add_argument("--b-body", required=True)
    common.main(Run, p.parse_args())


if __name__ == "__main__":
    main()
