#!/usr/bin/python3
"""Message Carbons (XEP-0280) with nbxmpp, the way Gajim 1.7 turns them on and reads them.

Gajim's library, nbxmpp (Debian's python3-nbxmpp 4.2.2), on a GLib main
loop. Three nbxmpp clients in one loop, each logged in as nbxmpp_common.py
does (STARTTLS to --host:--port, only the certificate in --cafile
accepted, nbxmpp's SASL mechanisms):

  * alice's "desk" and "phone" sessions (<alice>/desk, <alice>/phone), each
    set up as Gajim's client sets up a connection: Discovery.disco_info of
    the server's domain (gajim/common/modules/discovery.py,
    discover_server_info), and, when urn:xmpp:carbons:2 is among its
    features, the IQ set with <enable xmlns='urn:xmpp:carbons:2'/>
    addressed to nobody that Gajim's Carbons.pass_disco sends
    (gajim/common/modules/carbons.py; Gajim does not wait for the result,
    the script does, to know the server took it); then initial presence
    and a ping of the server (XEP-0199), whose answer means the server
    has handled the presence;
  * bob, who sends initial presence only (and the ping).

Every message a client gets is read as Gajim's message handler reads it
(gajim/common/modules/message.py, priority 50, after nbxmpp's own): from
the properties nbxmpp parsed. nbxmpp's dispatcher has already unwrapped a
carbon (nbxmpp/modules/misc.py, unwrap_carbon: dropped unless it comes
from the account's bare JID), so the properties describe the forwarded
message, with properties.carbon.is_sent / is_received set, and the remote
JID (properties.jid) the recipient of a sent carbon, the sender otherwise
(nbxmpp/modules/message.py).

Messages, each built as Gajim's build_message_stanza builds a chat message
(type chat, an id and the same origin-id, a receipt request, markable):

 1. phone to bob's bare JID: bob gets it, desk a sent carbon of it;
 2. bob to phone's full JID: phone gets it, desk a received carbon of it;
 3. phone to bob and bob to phone, with <private xmlns='urn:xmpp:carbons:2'/>
    alone, then with it and <no-copy xmlns='urn:xmpp:hints'/>: each is
    delivered; then one ordinary message each way ("last"), whose carbon desk
    must get. The server handles a session's stanzas in order, so a carbon of
    a private message would have reached desk before the carbon of the
    message after it.

Every message any client gets is printed, carbons included; the test
checks that desk got only the four carbons, in order, and phone and bob
none.

At the end the sessions log out one after the other, the phone first.
nbxmpp closes its stream without a last <a/> (XEP-0198), and adhocd then
hands the messages the phone had not acknowledged to alice's other
sessions, except to those that have them already as carbons: desk, still
online for a second, must not get them a second time.

Lines on stdout (JSON after the role):

    LOGIN <role> <bound JID>
    DISCO <role> <JID asked> <carbons|no-carbons>
    ENABLED <role> <type of the IQ's answer, or timeout>
    MESSAGE <role> {"type", "jid", "from", "to", "body", "private", "no_copy"}
    CARBON <role> {"is_sent", "is_received", "type", "jid", "from", "to", "body"}
    ERROR <label> {"class", "condition", "text"}
    TIMEOUT <what was not seen>
    OK

A step that fails prints ERROR or TIMEOUT and the next steps run. Exits 0
when every step ran, 1 on any other error, 2 on the overall timeout.
"""

import json
import os
import sys

# nbxmpp_common.py sits next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import nbxmpp  # noqa: E402
from nbxmpp.namespaces import Namespace  # noqa: E402
from nbxmpp.protocol import Presence  # noqa: E402
from nbxmpp.structs import StanzaHandler  # noqa: E402
from nbxmpp.util import generate_id  # noqa: E402

import nbxmpp_common as common  # noqa: E402
from nbxmpp_common import say  # noqa: E402

WAIT = 5  # seconds for a message or a carbon to arrive


def jid_str(jid):
    return None if jid is None else str(jid)


class Session(common.Session):
    """One nbxmpp client, and what Gajim's message handler saw of it."""

    def __init__(self, run, role, jid, password, resource):
        super().__init__(run, jid, password, resource, role=role)
        self.messages = []  # the MESSAGE dicts
        self.carbons = []  # the CARBON dicts
        # Where Gajim's Message module reads messages: after nbxmpp's own
        # handlers (message 5 and 10, receipts, chat markers 15, ...).
        self.client.register_handler(StanzaHandler(name="message", callback=self._on_message, priority=50))

    def _on_message(self, _client, stanza, properties):
        if properties.is_mam_message or properties.is_pubsub:
            return
        if properties.is_carbon_message:
            c = {
                "is_sent": properties.carbon.is_sent,
                "is_received": properties.carbon.is_received,
                "type": properties.type.value,
                "jid": jid_str(properties.jid),
                "from": jid_str(properties.from_),
                "to": jid_str(properties.to),
                "body": properties.body,
            }
            say("CARBON", self.role, json.dumps(c, ensure_ascii=False))
            self.carbons.append(c)
        else:
            m = {
                "type": properties.type.value,
                "jid": jid_str(properties.jid),
                "from": jid_str(properties.from_),
                "to": jid_str(properties.to),
                "body": properties.body,
                "private": stanza.getTag("private", namespace=Namespace.CARBONS) is not None,
                "no_copy": stanza.getTag("no-copy", namespace=Namespace.MSG_HINTS) is not None,
            }
            say("MESSAGE", self.role, json.dumps(m, ensure_ascii=False))
            self.messages.append(m)
        self.run.poke()

    def got(self, body):
        return any(m["body"] == body for m in self.messages)

    def got_carbon(self, kind, body):
        return any(c["body"] == body and c["is_" + kind] for c in self.carbons)


class Run(common.Run):
    """The steps."""

    def order(self, sessions):
        """The phone leaves first, so that desk, still online, would get
        what the server does with the phone's unacknowledged messages."""
        return sorted(sessions, key=lambda s: s.role != "phone")

    def logged_in(self, session):
        say("LOGIN", session.role, session.client.get_bound_jid())

    def iq(self, session, iq):
        """A waitable: send iq; the answer, or None after TASK_TIMEOUT."""
        def call(resume):
            session.client.send_stanza(iq, callback=lambda _c, answer: resume(answer), timeout=common.TASK_TIMEOUT)
        return call

    def until(self, what, test):
        """A waitable: until test() is true, or WAIT seconds passed (then
        TIMEOUT what is printed)."""
        def expired():
            say("TIMEOUT", what)
            return False
        return self.wait(test, WAIT, expired)

    # The sessions.

    def login(self, role, jid, password, resource, gajim):
        """Log in; gajim: discover and enable carbons first, as Gajim does."""
        s = Session(self, role, jid, password, resource)
        self.sessions.append(s)
        yield self.connect(s)
        if gajim:
            # Gajim's discover_server_info, and Carbons.pass_disco with it.
            domain = s.client.get_bound_jid().domain
            disco = s.client.get_module("Discovery")
            info = yield from self.run(role + " disco", lambda **kw: disco.disco_info(domain, **kw))
            if info is not None:
                carbons = Namespace.CARBONS in info.features
                say("DISCO", role, info.jid, "carbons" if carbons else "no-carbons")
                if carbons:
                    iq = nbxmpp.Iq("set")
                    iq.setTag("enable", namespace=Namespace.CARBONS)
                    answer = yield self.iq(s, iq)
                    say("ENABLED", role, answer.getType() if answer is not None else "timeout")
        s.client.send_stanza(Presence())
        ping = s.client.get_module("Ping")
        yield from self.run(role + " ping", lambda **kw: ping.ping(s.client.get_bound_jid().domain, **kw))
        return s

    @staticmethod
    def send(src, to, body, private=False, no_copy=False):
        """Send a chat message as Gajim's build_message_stanza makes it."""
        msg = nbxmpp.Message(to=to, body=body, typ="chat")
        id_ = generate_id()
        msg.setID(id_)
        msg.setOriginID(id_)
        msg.setReceiptRequest()
        msg.setMarkable()
        if private:
            msg.setTag("private", namespace=Namespace.CARBONS)
        if no_copy:
            msg.setTag("no-copy", namespace=Namespace.MSG_HINTS)
        src.client.send_stanza(msg)

    def steps(self):
        a = self.args
        desk = yield from self.login("desk", a.alice_jid, a.alice_password, "desk", True)
        phone = yield from self.login("phone", a.alice_jid, a.alice_password, "phone", True)
        bob = yield from self.login("bob", a.bob_jid, a.bob_password, "nbxmpp-bob", False)
        phone_full = str(phone.client.get_bound_jid())
        bob_bare = str(bob.client.get_bound_jid().new_as_bare())

        def body(*words):
            return " ".join((a.tag,) + words)

        # 1. A sent carbon.
        b = body("from-phone")
        self.send(phone, bob_bare, b)
        yield self.until("bob: %r" % b, lambda: bob.got(b))
        yield self.until("desk: sent carbon of %r" % b, lambda: desk.got_carbon("sent", b))

        # 2. A received carbon.
        b = body("to-phone")
        self.send(bob, phone_full, b)
        yield self.until("phone: %r" % b, lambda: phone.got(b))
        yield self.until("desk: received carbon of %r" % b, lambda: desk.got_carbon("received", b))

        # 3. Not copied: delivered, then an ordinary message after them.
        for name, no_copy in (("private", False), ("private+no-copy", True)):
            b = body("from-phone", name)
            self.send(phone, bob_bare, b, private=True, no_copy=no_copy)
            yield self.until("bob: %r" % b, lambda: bob.got(b))
            b = body("to-phone", name)
            self.send(bob, phone_full, b, private=True, no_copy=no_copy)
            yield self.until("phone: %r" % b, lambda: phone.got(b))
        last_out, last_in = body("from-phone", "last"), body("to-phone", "last")
        self.send(phone, bob_bare, last_out)
        yield self.until("desk: sent carbon of %r" % last_out, lambda: desk.got_carbon("sent", last_out))
        self.send(bob, phone_full, last_in)
        yield self.until("desk: received carbon of %r" % last_in, lambda: desk.got_carbon("received", last_in))
        yield self.until("bob: %r" % last_out, lambda: bob.got(last_out))
        yield self.until("phone: %r" % last_in, lambda: phone.got(last_in))


def main():
    p = common.parser(__doc__, logins=("alice-", "bob-"), jid_help="a bare JID")
    p.add_argument("--tag", required=True, help="first word of every body")
    common.main(Run, p.parse_args())


if __name__ == "__main__":
    main()
