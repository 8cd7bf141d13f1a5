#!/usr/bin/python3
"""slixmpp's XEP-0352 plugin (xep_0352) tells adhocd that alice's app is idle.

Run by interop/csi_test.go with Debian's /usr/bin/python3 and
python3-slixmpp 1.8.3. alice and bob are contacts with a subscription both
ways (the test sets up their rosters). Both log in as in common.py
(STARTTLS, the server's certificate as the only CA, SCRAM) and send
presence; alice loads xep_0352 (and xep_0203 to read delays), both load
xep_0085 for chat states. alice first waits for bob's initial presence, so
that nothing from before the test is in flight.

Every time alice goes inactive or active she sends the plugin's
send_inactive() or send_active() and then pings the server: the server
reads her stream in order, so once the pong is back her new state holds.
bob likewise pings after what he sends, so that it has all been routed to
alice by then.

  A. alice goes inactive. bob sends three presence updates (away, xa, dnd,
     each with a status of its own) and two chat-state-only messages
     (composing, then paused) to her full JID. alice waits QUIET seconds:
     nothing of it may reach her. Then she goes active, and gets what the
     server held.
  B. alice goes inactive again. bob sends a presence update (chat), a
     composing, and then a chat message with a body (and <active/>, as
     XEP-0085 clients send): the message must reach the still inactive
     alice, after what it flushed.

Lines on stdout the test reads, besides common.Client's:

    CSI_FEATURE <offered|missing> <enabled>
        the csi_enabled event fired (the stream feature was offered) and
        the plugin's enabled flag
    STATE <phase>
        alice is about to send the state of the phase (A-inactive,
        A-active, B-inactive); what she gets from then on is of that phase
    GOT <phase> <kind> <state> <delay from|-> <delay stamp|-> <text|->
        a stanza from bob reached alice: kind presence (state: its show,
        or available; text: its status), chatstate (state: the chat
        state) or message (a body: state its chat state or -, text the
        body)
    LATENCY <ms>
        from bob sending the body message to alice getting it
    OK

Exits 0 when every step ran (what alice got is checked by the Go test), 1
on any error and 2 on the overall timeout.
"""

import asyncio
import os
import sys
import time

# common.py sits next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import say  # noqa: E402

NS_DELAY = "urn:xmpp:delay"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
STEP = 5  # seconds any single answer may take
QUIET = 1.0  # seconds alice listens for what must be held


class Alice(common.Client):
    """alice: CSI on, and a log of what bob's full JID sends her."""

    def __init__(self, args):
        super().__init__("alice", args.alice_jid, args.alice_password, args.cafile,
                         plugins=("xep_0030", "xep_0085", "xep_0199", "xep_0203", "xep_0352"),
                         roster=True)
        self.bob_bare = args.bob_jid
        self.phase = "login"
        self.bob = None  # bob's full JID, once his first presence came
        self.got = []  # (phase, kind, state, text)
        self.changed = asyncio.Event()
        self.csi_event = False
        self.add_event_handler("csi_enabled", self._on_csi)
        self.add_event_handler("presence", self._on_presence)
        # slixmpp raises message only for a <body/>; xep_0085 raises
        # chatstate for the chat states, with a body or without.
        self.add_event_handler("message", self._on_message)
        self.add_event_handler("chatstate", self._on_chatstate)

    def _on_csi(self, _features):
        self.csi_event = True

    def _record(self, stanza, kind, state, text):
        d = stanza.xml.find("{%s}delay" % NS_DELAY)
        dfrom = (d.get("from") or "-") if d is not None else "-"
        stamp = (d.get("stamp") or "-") if d is not None else "-"
        say("GOT", self.phase, kind, state, dfrom, stamp, text or "-")
        self.got.append((self.phase, kind, state, text))
        self.changed.set()

    def _on_presence(self, pres):
        if pres["from"].bare != self.bob_bare or pres["type"] in ("subscribe", "subscribed",
                                                                 "unsubscribe", "unsubscribed", "probe"):
            return
        if self.bob is None:
            # bob's initial presence, before the test: not logged.
            self.bob = pres["from"]
            self.changed.set()
            return
        self._record(pres, "presence", pres["show"] or pres["type"], pres["status"])

    def _on_message(self, msg):
        if msg["from"].bare != self.bob_bare:
            return
        states = [el.tag.split("}", 1)[1] for el in msg.xml if el.tag.startswith("{%s}" % NS_CHATSTATES)]
        self._record(msg, "message", states[0] if states else "-", msg["body"])

    def _on_chatstate(self, msg):
        if msg["from"].bare != self.bob_bare or msg["body"]:
            return  # a message with a body: _on_message logs it
        self._record(msg, "chatstate", msg["chat_state"], None)

    async def until(self, what, test):
        await common.until(self.changed, test, STEP,
                           lambda: "alice did not get %s (in phase %s)" % (what, self.phase))

    async def set_state(self, phase, active):
        # What comes from now on is of the new phase: the stanzas <active/>
        # releases come before the pong.
        self.phase = phase
        say("STATE", phase)
        if active:
            self["xep_0352"].send_active()
        else:
            self["xep_0352"].send_inactive()
        # Read in order with the state: once the pong is back, it holds.
        await self["xep_0199"].send_ping(self.boundjid.domain, timeout=STEP)


async def run(args):
    alice = Alice(args)
    bob = common.Client("bob", args.bob_jid, args.bob_password, args.cafile,
                        plugins=("xep_0030", "xep_0085", "xep_0199"), roster=True)

    await alice.login(args.host, args.port)
    say("CSI_FEATURE", "offered" if alice.csi_event else "missing", alice["xep_0352"].enabled)
    await bob.login(args.host, args.port)
    await alice.until("bob's initial presence", lambda: alice.bob is not None)
    to = alice.boundjid.full
    domain = bob.boundjid.domain

    def chat_state(state):
        msg = bob.make_message(mto=to, mtype="chat")
        msg["chat_state"] = state
        msg.send()

    def status(n):
        return "%s status %d" % (args.tag, n)

    # A. Held while inactive, the last of each kind after <active/>.
    await alice.set_state("A-inactive", active=False)
    for n, show in enumerate(("away", "xa", "dnd"), 1):
        bob.send_presence(pshow=show, pstatus=status(n))
    chat_state("composing")
    chat_state("paused")
    await bob["xep_0199"].send_ping(domain, timeout=STEP)
    await asyncio.sleep(QUIET)
    await alice.set_state("A-active", active=True)
    await alice.until("bob's paused chat state",
                      lambda: any(g[1] == "chatstate" and g[2] == "paused" for g in alice.got))

    # B. A message with a body goes at once, after what it flushes.
    await alice.set_state("B-inactive", active=False)
    bob.send_presence(pshow="chat", pstatus=status(4))
    chat_state("composing")
    await bob["xep_0199"].send_ping(domain, timeout=STEP)
    msg = bob.make_message(mto=to, mbody=args.body, mtype="chat")
    msg["chat_state"] = "active"
    sent = time.monotonic()
    msg.send()
    await alice.until("bob's message", lambda: any(g[1] == "message" for g in alice.got))
    say("LATENCY", round((time.monotonic() - sent) * 1000))

    await asyncio.gather(alice.logout(), bob.logout())
    say("OK")


def main():
    p = common.parser(__doc__, logins=("alice-", "bob-"), jid_help="a bare JID")
    p.add_argument("--tag", required=True, help="first word of every status")
    p.add_argument("--body", required=True, help="the body of bob's message")
    args = p.parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
