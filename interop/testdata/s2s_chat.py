#!/usr/bin/python3
"""Two slixmpp users of two federated servers exchange chat messages.

Run by interop/s2speer_test.go with Debian's /usr/bin/python3 and
python3-slixmpp. User a logs in to its server (--host, --port, --cafile),
user b to another (--b-host, --b-port, --b-cafile), each as in common.py
(STARTTLS, the certificate given the only trusted CA, the JID's domain the
name checked, SCRAM), with its roster fetched and presence sent. Then a
sends --a-body to b's bare JID and b, once it got exactly that from a,
sends --b-body back; a must get exactly that. Last, each asks disco#info
(XEP-0030) of the other's server JID. Every stanza between the two crosses
the servers' server-to-server streams (RFC 6120 §4, dialback or SASL
EXTERNAL, whatever the servers agree on).

Lines on stdout the test reads, besides common.Client's:

    RECEIVED <role> <sender's bare JID> <body>
    DISCO <role> <remote server JID> <number of features>
    OK

Exits 0 when both messages and both disco answers came, 1 on any error and
2 on the overall timeout.
"""

import asyncio
import os
import sys

# common.py sits next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import say  # noqa: E402

STEP = 20  # seconds one hop may take, the first s2s stream's set-up included


def expect(client, role, sender):
    """A future for the next chat message from sender's bare JID."""
    got = asyncio.get_running_loop().create_future()

    def on_message(msg):
        if msg["type"] not in ("chat", "normal") or msg["from"].bare != sender:
            return
        say("RECEIVED", role, msg["from"].bare, msg["body"])
        if not got.done():
            got.set_result(msg["body"])

    client.add_event_handler("message", on_message)
    return got


async def run(args):
    a, b = common.federation_clients(args, plugins=("xep_0030",))
    await common.login_both(args, a, b)
    at_b = expect(b, "b", a.boundjid.bare)
    at_a = expect(a, "a", b.boundjid.bare)

    a.send_message(mto=b.boundjid.bare, mbody=args.a_body, mtype="chat")
    body = await asyncio.wait_for(at_b, STEP)
    if body != args.a_body:
        raise RuntimeError("b got %r, want %r" % (body, args.a_body))
    b.send_message(mto=a.boundjid.bare, mbody=args.b_body, mtype="chat")
    body = await asyncio.wait_for(at_a, STEP)
    if body != args.b_body:
        raise RuntimeError("a got %r, want %r" % (body, args.b_body))

    for role, client, remote in (("a", a, b.boundjid.domain), ("b", b, a.boundjid.domain)):
        info = await client["xep_0030"].get_info(jid=remote, timeout=STEP)
        say("DISCO", role, remote, len(info["disco_info"]["features"]))

    await asyncio.gather(a.logout(), b.logout())
    say("OK")


def main():
    args = common.federation_parser(__doc__, timeout=60.0).parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
