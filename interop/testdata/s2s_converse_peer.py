#!/usr/bin/python3
"""A slixmpp user of a federation peer is added as a contact by a Converse.js user of adhocd, adds it back and chats.

Run by interop/s2s_converse_test.go with Debian's /usr/bin/python3 and
python3-slixmpp, next to js/s2s_converse.mjs, which drives Converse.js in
Chromium as the user --contact on adhocd. This script is the other end:
user b on the peer (Prosody or ejabberd), logged in as in common.py
(STARTTLS to --host/--port, --cafile the only trusted certificate, the
JID's domain the name checked, SCRAM), with its roster fetched and
presence sent. Nothing is automatic (slixmpp's auto_authorize and
auto_subscribe are off); each step is the script's, as its user would do
it in a client, over the servers' server-to-server streams (RFC 6120 §4):

 1. It prints READY; the test starts Converse then.
 2. It waits for --contact's subscription request (RFC 6121 §3.1.2: sent
    when the Converse user adds b in the Add Contact dialog), approves it
    (presence of type subscribed, §3.1.4) and asks for a subscription back
    (subscribe, §3.1.1): Converse approves that by itself, since b is in
    its roster already.
 3. It waits for the approval, for its roster to say both for --contact
    with nothing pending, and for --contact's available presence (§3.1.5).
 4. It waits for a chat message from --contact; it must be exactly
    --expect (what the Converse user typed). It answers --body.
 5. It waits for --contact to go offline (the Converse user logged out:
    RFC 6121 §4.5.2), then logs out.

Lines on stdout the test reads, besides common.Client's MECHANISM:

    READY <own full JID>
    SUBSCRIBE <sender's bare JID> <nickname (XEP-0172), or ->
    SUBSCRIBED <sender's bare JID>
    ROSTER <contact's bare JID> <subscription> <ask, or ->
        (each roster push, and the roster fetched at login)
    SUBSCRIPTION <contact's bare JID> both
    AVAILABLE <sender's full JID>
    UNAVAILABLE <sender's full JID>
    RECEIVED <sender's full JID> <body>
    SENT
    OK

Exits 0 when every step came out as said, 1 on any error and 2 on the
overall timeout.
"""

import os
import sys

# common.py sits next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import say  # noqa: E402

# Seconds one step may take: Converse starting in Chromium and the first
# s2s stream's set-up included, and the Converse user's typing.
STEP = 60


class Watch(common.ContactWatch):
    """What b has seen of the contact, for until(): common.ContactWatch
    without a role, whose SUBSCRIBE line adds the nickname and whose
    RECEIVED line has the sender's full JID."""

    def subscribe_words(self, pres):
        # Converse sends subscribe again when it gets b's approval (its
        # acknowledgement, RFC 6121 §3.1.5); Prosody answers that one
        # itself, so b may see more than one request.
        return pres["from"].bare, pres["nick"]["nick"] or "-"

    def received_words(self, msg):
        return msg["from"].full, msg["body"]

    def state(self):
        """The contact's subscription in b's roster, and whether b's own
        request is still pending."""
        return self.subscription(), bool(self.client.client_roster[self.contact]["pending_out"])


async def run(args):
    client = common.Client("b", args.jid, args.password, args.cafile, plugins=("xep_0172",),
                           tls_max=args.tls_max, roster=True)
    client.auto_authorize = None
    client.auto_subscribe = False
    w = Watch(client, args.contact, step=STEP)
    await client.login(args.host, args.port)
    say("READY", client.boundjid.full)

    await w.until(lambda: w.subscribe, "no subscription request from " + args.contact)
    client.send_presence(pto=args.contact, ptype="subscribed")
    client.send_presence_subscription(pto=args.contact, ptype="subscribe")
    await w.until(lambda: w.subscribed, "no approval from " + args.contact)
    await w.until(lambda: w.state() == ("both", False),
                  lambda: "%s in b's roster is %s, want both with nothing pending" % (args.contact, w.state()))
    say("SUBSCRIPTION", args.contact, w.state()[0])
    await w.until(lambda: w.available, "no available presence of " + args.contact)

    await w.until(lambda: w.messages, "no message from " + args.contact)
    if w.messages != [args.expect]:
        raise RuntimeError("b got %r from %s, want %r" % (w.messages, args.contact, [args.expect]))
    client.send_message(mto=args.contact, mbody=args.body, mtype="chat")
    say("SENT")

    await w.until(lambda: w.unavailable, "%s never went offline" % args.contact)
    await client.logout()
    say("OK")


def main():
    p = common.parser(__doc__, tls_max=True, timeout=150.0)
    p.add_argument("--contact", required=True, help="the Converse user's bare JID")
    p.add_argument("--expect", required=True, help="the body the Converse user sends")
    p.add_argument("--body", required=True, help="the body to answer with")
    common.main(run, p.parse_args())


if __name__ == "__main__":
    main()
