#!/usr/bin/python3
"""Two slixmpp clients exchange one chat message through adhocd.

Run by interop/slixmpp_test.go with Debian's /usr/bin/python3 and
python3-slixmpp. The receiver logs in over STARTTLS with SCRAM, sends initial
presence and waits; once it is online, the sender logs in the same way, sends
presence and one chat message to the receiver's bare JID. Both clients share
one asyncio loop and log in as in common.py: the server's self-signed
certificate is the only CA the clients trust, and the host name checked is
the JIDs' domain ("localhost"), while the TCP connection goes to the address
given on the command line. Each fetches its roster before it counts as
online.

With --offline the sender logs in first, sends the message while the
receiver is offline and logs out; the receiver then logs in and must get
the message, kept by the server (XEP-0160), with a XEP-0203 delay whose
stamp it prints.

--tls-max 1.2 exists because slixmpp 1.8.3 binds SCRAM-*-PLUS to tls-unique
only (CPython's ssl has no tls-exporter), and tls-unique is undefined in
TLS 1.3 (RFC 9266). Over TLS 1.3 it tries -PLUS with p=tls-unique, which the
server rejects, then plain SCRAM with the "y" flag, which a server offering
-PLUS must reject as a downgrade (RFC 5802, section 6), so it cannot log in
with SCRAM at all.

Lines on stdout the test reads:

    MECHANISM <role> <SASL mechanism name>
    AUTH_FAILED <role> <SASL mechanism name> <condition>
    RECEIVED <body>
    DELAYED <stamp, ISO 8601>   (a message that carried a XEP-0203 delay)
    OK

Exits 0 only when the receiver got a chat message from the sender whose body
is exactly the one given; exits 1 on any error and 2 on the overall timeout.
"""

import asyncio
import os
import sys

# common.py sits next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import say  # noqa: E402


async def run(args):
    receiver = common.Client("receiver", args.receiver_jid, args.receiver_password, args.cafile,
                             plugins=("xep_0203",), tls_max=args.tls_max, roster=True)
    sender = common.Client("sender", args.sender_jid, args.sender_password, args.cafile,
                           tls_max=args.tls_max, roster=True)
    got = asyncio.get_running_loop().create_future()

    def on_message(msg):
        if msg["type"] not in ("chat", "normal"):
            return
        if msg["from"].bare != sender.boundjid.bare:
            return
        say("RECEIVED", msg["body"])
        stamp = msg["delay"]["stamp"]
        if stamp is not None:
            say("DELAYED", stamp.isoformat())
        if not got.done():
            got.set_result(msg["body"])

    receiver.add_event_handler("message", on_message)

    if args.offline:
        await sender.login(args.host, args.port)
        sender.send_message(mto=args.receiver_jid, mbody=args.body, mtype="chat")
        await sender.logout()
        await receiver.login(args.host, args.port)
    else:
        await receiver.login(args.host, args.port)
        await sender.login(args.host, args.port)
        sender.send_message(mto=receiver.boundjid.bare, mbody=args.body, mtype="chat")
    body = await got
    if body != args.body:
        raise RuntimeError("body mismatch: got %r, want %r" % (body, args.body))

    if args.offline:
        await receiver.logout()
    else:
        await asyncio.gather(sender.logout(), receiver.logout())
    say("OK")


def main():
    p = common.parser(__doc__, logins=("sender-", "receiver-"), tls_max=True)
    p.add_argument("--body", required=True)
    p.add_argument("--offline", action="store_true", help="send while the receiver is offline")
    args = p.parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
