#!/usr/bin/python3
"""slixmpp's own XEP-0280 plugin (xep_0280) gets carbons from adhocd.

Run by interop/carbons_test.go with Debian's /usr/bin/python3 and
python3-slixmpp 1.8.3. Three clients log in as in common.py (STARTTLS with
the server's self-signed certificate, SCRAM) and send initial presence:
alice twice, as <alice>/res1 and <alice>/res2, both with xep_0280 loaded and
carbons enabled with its enable(), and bob.

1. bob sends alice/res1 a chat message: res1 gets it, res2 gets a received
   carbon (the plugin's carbon_received event) of it.
2. res1 sends bob a chat message: bob gets it, res2 gets a sent carbon
   (carbon_sent).
3. Messages that must not be copied, each way (bob to res1, res1 to bob):
   one with <private xmlns='urn:xmpp:carbons:2'/> (the plugin's
   carbon_private), one with <no-copy xmlns='urn:xmpp:hints'/> (xep_0334's
   no-copy), one with both. Each is delivered; then one ordinary message
   each way, whose carbon res2 must get, with no carbon of the private ones
   before it: a carbon of them would have been sent first.

Every carbon any of the three gets is printed, and every message (the
carbons too, as slixmpp also raises a message event for them).

Lines on stdout the test reads, besides common.Client's:

    ENABLED <role>                     carbons enabled (the IQ's result)
    RECEIVED <role> <from> <private|-> <no-copy|-> <body>
    CARBON <role> <received|sent> <carbon's from> <fwd from> <fwd to> <body>
    OK

Exits 0 when every step happened, 1 on any error and 2 on the overall
timeout.
"""

import asyncio
import os
import sys

# common.py sits next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from slixmpp import JID  # noqa: E402

import common  # noqa: E402
from common import say  # noqa: E402

STEP = 15  # seconds any single answer may take
NS_CARBONS = "urn:xmpp:carbons:2"
NS_HINTS = "urn:xmpp:hints"


class Inbox:
    """What a client got: plain messages and carbons, with a way to wait."""

    def __init__(self, client):
        self.role = client.role
        self.messages = []  # bodies of messages that are not carbons
        self.carbons = []  # (kind, body)
        self.changed = asyncio.Event()
        client.add_event_handler("message", self.on_message)
        client.add_event_handler("carbon_received", lambda m: self.on_carbon("received", m))
        client.add_event_handler("carbon_sent", lambda m: self.on_carbon("sent", m))

    def on_message(self, msg):
        if msg["type"] not in ("chat", "normal"):
            return
        if msg.xml.find("{%s}received" % NS_CARBONS) is not None or \
                msg.xml.find("{%s}sent" % NS_CARBONS) is not None:
            return  # a carbon: on_carbon reports it
        private = msg.xml.find("{%s}private" % NS_CARBONS) is not None
        nocopy = msg.xml.find("{%s}no-copy" % NS_HINTS) is not None
        say("RECEIVED", self.role, msg["from"], "private" if private else "-",
            "no-copy" if nocopy else "-", msg["body"])
        self.messages.append(msg["body"])
        self.changed.set()

    def on_carbon(self, kind, msg):
        fwd = msg["carbon_%s" % kind]
        say("CARBON", self.role, kind, msg["from"], fwd["from"], fwd["to"], fwd["body"])
        self.carbons.append((kind, fwd["body"]))
        self.changed.set()

    async def wait(self, what, test):
        await common.until(self.changed, test, STEP, "%s did not get %s" % (self.role, what))

    async def message(self, body):
        await self.wait("the message %r" % body, lambda: body in self.messages)

    async def carbon(self, kind, body):
        await self.wait("a %s carbon of %r" % (kind, body), lambda: (kind, body) in self.carbons)


async def run(args):
    alice = JID(args.alice_jid)
    plugins = ("xep_0030", "xep_0297", "xep_0280", "xep_0334")
    res1 = common.Client("res1", "%s/res1" % alice.bare, args.alice_password, args.cafile,
                         plugins=plugins, roster=True)
    res2 = common.Client("res2", "%s/res2" % alice.bare, args.alice_password, args.cafile,
                         plugins=plugins, roster=True)
    bob = common.Client("bob", args.bob_jid, args.bob_password, args.cafile,
                        plugins=("xep_0334",), roster=True)
    inbox = {c.role: Inbox(c) for c in (res1, res2, bob)}

    for c in (res1, res2):
        await c.login(args.host, args.port)
        await c.plugin["xep_0280"].enable(timeout=STEP)
        say("ENABLED", c.role)
    await bob.login(args.host, args.port)
    res1_full = res1.boundjid.full
    bob_bare = bob.boundjid.bare

    def body(*words):
        return " ".join((args.tag,) + words)

    def send(src, to, text, private=False, nocopy=False):
        msg = src.make_message(mto=to, mbody=text, mtype="chat")
        if private:
            msg.enable("carbon_private")
        if nocopy:
            msg.enable("no-copy")
        msg.send()

    # 1. Received carbon.
    b = body("to-res1")
    send(bob, res1_full, b)
    await inbox["res1"].message(b)
    await inbox["res2"].carbon("received", b)

    # 2. Sent carbon.
    b = body("from-res1")
    send(res1, bob_bare, b)
    await inbox["bob"].message(b)
    await inbox["res2"].carbon("sent", b)

    # 3. Not copied.
    for name, private, nocopy in (("private", True, False), ("no-copy", False, True),
                                  ("private+no-copy", True, True)):
        b = body("to-res1", name)
        send(bob, res1_full, b, private, nocopy)
        await inbox["res1"].message(b)
        b = body("from-res1", name)
        send(res1, bob_bare, b, private, nocopy)
        await inbox["bob"].message(b)
    last_in, last_out = body("to-res1", "last"), body("from-res1", "last")
    send(bob, res1_full, last_in)
    await inbox["res2"].carbon("received", last_in)
    send(res1, bob_bare, last_out)
    await inbox["res2"].carbon("sent", last_out)
    await inbox["bob"].message(last_out)
    await inbox["res1"].message(last_in)

    await asyncio.gather(res1.logout(), res2.logout(), bob.logout())
    say("OK")


def main():
    p = common.parser(__doc__, logins=("alice-", "bob-"), jid_help="a bare JID")
    p.add_argument("--tag", required=True, help="first word of every body")
    args = p.parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
