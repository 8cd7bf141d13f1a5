#!/usr/bin/python3
"""Message Carbons (XEP-0280) with nbxmpp, the way Gajim 1.7 turns them on and reads them.

Gajim's library, nbxmpp (Debian's python3-nbxmpp 4.2.2), on a GLib main
loop. Three nbxmpp clients in one loop, each logged in as nbxmpp_pep.py
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

import argparse
import json
import logging
import sys
import traceback

from gi.repository import Gio, GLib

import nbxmpp
from nbxmpp.client import Client
from nbxmpp.const import ConnectionProtocol, ConnectionType
from nbxmpp.errors import BaseError, StanzaError
from nbxmpp.namespaces import Namespace
from nbxmpp.protocol import JID, Presence
from nbxmpp.structs import StanzaHandler
from nbxmpp.util import generate_id

TASK_TIMEOUT = 10  # seconds, for each request
WAIT = 5  # seconds for a message or a carbon to arrive


def say(label, *rest):
    """Print one result line for the Go test, at once."""
    print(label, *rest, flush=True)


def error_json(error):
    return {
        "class": type(error).__name__,
        "condition": getattr(error, "condition", None) if isinstance(error, StanzaError) else None,
        "text": str(error),
    }


def jid_str(jid):
    return None if jid is None else str(jid)


class Session:
    """One nbxmpp client, and what Gajim's message handler saw of it."""

    def __init__(self, run, role, jid, password, resource):
        a = run.args
        self.run = run
        self.role = role
        self.messages = []  # the MESSAGE dicts
        self.carbons = []  # the CARBON dicts
        self.on_connected = None
        self.leaving = False  # disconnect called
        self.gone = False
        c = Client()
        jid = JID.from_string(jid)
        c.set_username(jid.localpart)
        c.set_domain(jid.domain)
        c.set_resource(resource)
        c.set_password(password)
        c.set_custom_host("%s:%d" % (a.host, a.port), ConnectionProtocol.TCP, ConnectionType.START_TLS)
        c.set_accepted_certificates([Gio.TlsCertificate.new_from_file(a.cafile)])
        c.subscribe("connected", self._on_connected)
        c.subscribe("connection-failed", self._on_failed)
        c.subscribe("disconnected", self._on_disconnected)
        if a.debug:
            c.subscribe("stanza-sent", lambda _c, _s, data: print(role, "SENT:", data, file=sys.stderr))
            c.subscribe("stanza-received", lambda _c, _s, data: print(role, "RECV:", data, file=sys.stderr))
        # Where Gajim's Message module reads messages: after nbxmpp's own
        # handlers (message 5 and 10, receipts, chat markers 15, ...).
        c.register_handler(StanzaHandler(name="message", callback=self._on_message, priority=50))
        self.client = c

    def _on_connected(self, client, _signal):
        say("LOGIN", self.role, client.get_bound_jid())
        cb, self.on_connected = self.on_connected, None
        if cb is not None:
            cb()

    def _on_failed(self, client, _signal):
        print("FAIL %s: connection failed: %s" % (self.role, client.get_error()), file=sys.stderr, flush=True)
        self.run.stop(1)

    def _on_disconnected(self, client, _signal):
        self.gone = True
        if self.run.done:
            self.run.disconnected()
            return
        print("FAIL %s: disconnected: %s" % (self.role, client.get_error()), file=sys.stderr, flush=True)
        self.run.stop(1)

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


class Run:
    """The steps, as a generator: each yields a function that starts
    something and is given resume, to call with the outcome."""

    def __init__(self, args, loop):
        self.args = args
        self.loop = loop
        self.status = 1
        self.sessions = []
        self.steps = None
        self.finished = False
        self.done = False
        self.waiter = None  # a check run when a message came in
        self.callback = None  # the task callback pending

    def start(self):
        self.steps = self._steps()
        self._advance(None)

    def stop(self, status):
        if self.finished:
            return
        self.finished = True
        self.status = status
        self.loop.quit()

    def disconnected(self):
        """Log the sessions out one after the other, the phone first, and
        stop once all are gone. Each next one leaves a second after the
        one before is gone, so that desk, still online, would get what the
        server does with the phone's unacknowledged messages."""
        for i, s in enumerate(sorted(self.sessions, key=lambda s: s.role != "phone")):
            if not s.gone:
                if not s.leaving:
                    s.leaving = True
                    if i == 0:
                        s.client.disconnect()
                    else:
                        GLib.timeout_add_seconds(1, lambda c=s.client: c.disconnect() and False)
                return
        self.stop(0)

    # Driving the steps.

    def _advance(self, value):
        try:
            call = self.steps.send(value)
        except StopIteration:
            say("OK")
            self.done = True
            self.disconnected()
            GLib.timeout_add_seconds(5, lambda: self.stop(0) and False)
            return
        except Exception as e:  # noqa: BLE001 - any failure ends the run
            traceback.print_exc()
            print("FAIL %s: %s" % (type(e).__name__, e), file=sys.stderr, flush=True)
            self.stop(1)
            return
        call(self._resume)

    def _resume(self, value):
        GLib.idle_add(lambda: self._advance(value) and False)

    def poke(self):
        if self.waiter is not None:
            self.waiter()

    def connect(self, session):
        """A waitable: log session in."""
        def call(resume):
            session.on_connected = lambda: resume(True)
            session.client.connect()
        return call

    def task(self, start):
        """A waitable for an nbxmpp task: start(callback=, timeout=)."""
        def call(resume):
            def on_done(task):
                self.callback = None
                try:
                    result = task.finish()
                except BaseError as e:
                    result = e
                except Exception as e:  # noqa: BLE001 - nbxmpp raises others on bad replies
                    traceback.print_exc()
                    result = e
                resume(result)
            # The callback goes in with the call: nbxmpp refuses callbacks
            # on a finished task. nbxmpp holds it by a weak reference: the
            # run holds it until it is called.
            self.callback = on_done
            start(callback=on_done, timeout=TASK_TIMEOUT)
        return call

    def _run(self, label, start):
        """Run an nbxmpp task; its result, or None after printing ERROR."""
        result = yield self.task(start)
        if isinstance(result, Exception):
            say("ERROR", label, json.dumps(error_json(result)))
            return None
        return result

    def iq(self, session, iq):
        """A waitable: send iq; the answer, or None after TASK_TIMEOUT."""
        def call(resume):
            session.client.send_stanza(iq, callback=lambda _c, answer: resume(answer), timeout=TASK_TIMEOUT)
        return call

    def until(self, what, test):
        """A waitable: until test() is true, or WAIT seconds passed (then
        TIMEOUT what is printed)."""
        def call(resume):
            def check():
                if test():
                    self.waiter = None
                    resume(True)
                    return True
                return False
            if check():
                return
            self.waiter = check

            def timeout():
                if self.waiter is check:
                    self.waiter = None
                    say("TIMEOUT", what)
                    resume(False)
                return False
            GLib.timeout_add_seconds(WAIT, timeout)
        return call

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
            info = yield from self._run(role + " disco", lambda **kw: disco.disco_info(domain, **kw))
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
        yield from self._run(role + " ping", lambda **kw: ping.ping(s.client.get_bound_jid().domain, **kw))
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

    def _steps(self):
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
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--alice-jid", required=True, help="a bare JID")
    p.add_argument("--alice-password", required=True)
    p.add_argument("--bob-jid", required=True, help="a bare JID")
    p.add_argument("--bob-password", required=True)
    p.add_argument("--tag", required=True, help="first word of every body")
    p.add_argument("--timeout", type=float, default=40.0)
    p.add_argument("--debug", action="store_true", help="log nbxmpp and its XML to stderr")
    args = p.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")

    loop = GLib.MainLoop()
    run = Run(args, loop)

    def on_timeout():
        print("FAIL timeout after %.0fs" % args.timeout, file=sys.stderr, flush=True)
        run.stop(2)
        return False

    GLib.timeout_add(int(args.timeout * 1000), on_timeout)
    GLib.idle_add(lambda: run.start() and False)
    loop.run()
    sys.exit(run.status)


if __name__ == "__main__":
    main()
