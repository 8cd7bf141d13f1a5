#!/usr/bin/python3
"""Two users of two federated servers subscribe to each other and chat.

Run by interop/s2s_adhocd_test.go with Debian's /usr/bin/python3 and
python3-slixmpp: user a is on adhocd, user b on a federation peer (Prosody
or ejabberd). Each logs in as in common.py (STARTTLS, the certificate given
the only trusted CA, the JID's domain the name checked, SCRAM) to its own
server (a: --host, --port, --cafile; b: --b-host, --b-port, --b-cafile),
fetches its roster and sends presence. Nothing is automatic: slixmpp's
auto_authorize and auto_subscribe are off, and each step is the script's.

Then, over the servers' server-to-server streams (RFC 6120 §4):

 1. a subscribes to b's presence (RFC 6121 §3.1); b, once it got the
    request, approves it. a must see the approval, a roster push of b with
    subscription "to", and b's available presence (§3.1.5: the contact's
    server sends it once the subscription is approved).
 2. The same the other way: b subscribes to a, a approves. Both rosters
    must then say "both" for the other.
 3. a sends --a-body to b's bare JID; b, once it got exactly that, sends
    --b-body back; a must get exactly that.
 4. Each asks disco#info (XEP-0030) of the other's server JID.
 5. a logs out; b must get a's unavailable presence (§4.5.2), then logs
    out.

Lines on stdout the test reads, besides common.Client's:

    SUBSCRIBE <role> <sender's bare JID>
    SUBSCRIBED <role> <sender's bare JID>
    ROSTER <role> <contact's bare JID> <subscription> <ask, or ->
        (each roster push, and the roster fetched at login)
    SUBSCRIPTION <role> <contact's bare JID> both
        (once the roster says so, after both subscriptions)
    AVAILABLE <role> <sender's full JID>
    UNAVAILABLE <role> <sender's full JID>
    RECEIVED <role> <sender's bare JID> <body>
    DISCO <role> <remote server JID> <number of features> <category/type,...>
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

STEP = 20  # seconds one step may take, the first s2s stream's set-up included


async def subscribe(user, contact):
    """user subscribes to contact's presence, contact approves (RFC 6121
    §3.1), and user sees the approval, contact in its roster with a
    subscription to it, and contact's available presence. Both are
    common.ContactWatch, each watching the other."""
    user.client.send_presence_subscription(pto=user.contact, ptype="subscribe")
    await contact.until(lambda: contact.subscribe, "no subscription request from " + contact.contact)
    contact.client.send_presence(pto=contact.contact, ptype="subscribed")
    await user.until(lambda: user.subscribed, "no approval from " + user.contact)
    await user.until(lambda: user.subscription() in ("to", "both"),
                     "no roster push with a subscription to " + user.contact)
    await user.until(lambda: user.available, "no available presence of " + user.contact)


async def run(args):
    a, b = common.federation_clients(args, plugins=("xep_0030",))
    for c in (a, b):
        # No automatic answer to a subscription request, no automatic
        # request back: each is a step of this script.
        c.auto_authorize = None
        c.auto_subscribe = False
    # Each watches the other, whose bare JID is known after login.
    a, b = common.ContactWatch(a, role="a", step=STEP), common.ContactWatch(b, role="b", step=STEP)
    await common.login_both(args, a.client, b.client)
    a.contact, b.contact = b.client.boundjid.bare, a.client.boundjid.bare

    await subscribe(a, b)
    await subscribe(b, a)
    for w in (a, b):
        await w.until(lambda w=w: w.subscription() == "both",
                      "subscription with %s is not both" % w.contact)
        say("SUBSCRIPTION", w.role, w.contact, w.subscription())

    a.client.send_message(mto=a.contact, mbody=args.a_body, mtype="chat")
    await b.until(lambda: b.messages, "no message from " + b.contact)
    if b.messages != [args.a_body]:
        raise RuntimeError("b got %r, want %r" % (b.messages, [args.a_body]))
    b.client.send_message(mto=b.contact, mbody=args.b_body, mtype="chat")
    await a.until(lambda: a.messages, "no message from " + a.contact)
    if a.messages != [args.b_body]:
        raise RuntimeError("a got %r, want %r" % (a.messages, [args.b_body]))

    for w, remote in ((a, b.client.boundjid.domain), (b, a.client.boundjid.domain)):
        info = await w.client["xep_0030"].get_info(jid=remote, timeout=STEP)
        idents = sorted("%s/%s" % (cat, typ) for cat, typ, _lang, _name in info["disco_info"]["identities"])
        say("DISCO", w.role, remote, len(info["disco_info"]["features"]), ",".join(idents) or "-")

    await a.client.logout()
    await b.until(lambda: b.unavailable, "no unavailable presence of " + b.contact)
    await b.client.logout()
    say("OK")


def main():
    args = common.federation_parser(__doc__, timeout=90.0).parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
