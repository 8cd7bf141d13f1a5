#!/usr/bin/python3
"""slixmpp's own XEP-0191 plugin (xep_0191) blocks and unblocks through adhocd.

Run by interop/blocking_test.go with Debian's /usr/bin/python3 and
python3-slixmpp 1.8.3. Two clients log in as in common.py (STARTTLS with the
server's self-signed certificate, SCRAM) and send initial presence. The
blocker asks for its blocklist with get_blocked(), which makes its session
one that gets the pushes, blocks the other with block() and lists it again;
the blocked client's chat message must come back as an error and never
reach the blocker, whose own message to the blocked client comes back as
an error too. The blocker then unblocks with unblock(), and the blocked
client's next message must arrive.

Lines on stdout the test reads, besides common.Client's:

    BLOCKLIST_BEFORE <JSON list of JIDs>
    BLOCKED                        block() got its result
    PUSH <block|unblock> <JSON list of JIDs>   the 'blocked'/'unblocked' events
    BLOCKLIST <JSON list of JIDs>
    ERROR <condition> <type>       what the blocked client's message got back
    NOTHING_WHILE_BLOCKED          the blocker got no message in the wait
    RECEIVED_WHILE_BLOCKED <body>  (a failure)
    BLOCKER_ERROR <condition> <blocked|no-blocked>   the blocker's own message
    UNBLOCKED                      unblock() got its result
    RECEIVED <body>                the message after the unblock
    OK

Exits 0 when every step happened, 1 on any error and 2 on the overall
timeout.
"""

import asyncio
import json
import os
import sys

# common.py sits next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from slixmpp import JID  # noqa: E402

import common  # noqa: E402
from common import say  # noqa: E402

NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"
STEP = 10  # seconds any single answer may take
QUIET = 2  # seconds the blocker waits to be sure nothing arrives


def jids(items):
    return json.dumps(sorted(str(j) for j in items))


async def run(args):
    blocker = common.Client("blocker", args.blocker_jid, args.blocker_password, args.cafile,
                            plugins=("xep_0030", "xep_0191"), roster=True)
    blocked = common.Client("blocked", args.blocked_jid, args.blocked_password, args.cafile,
                            roster=True)
    blocker_bare, blocked_bare = JID(args.blocker_jid).bare, JID(args.blocked_jid).bare
    received, errors, blocker_errors, pushes = (asyncio.Queue() for _ in range(4))

    def on_message(msg):
        if msg["type"] != "error" and msg["from"].bare == blocked_bare:
            received.put_nowait(msg["body"])

    blocker.add_event_handler("message", on_message)
    blocker.add_event_handler("message_error", blocker_errors.put_nowait)
    blocked.add_event_handler("message_error", errors.put_nowait)
    blocker.add_event_handler("blocked", lambda iq: pushes.put_nowait(("block", iq["block"]["items"])))
    blocker.add_event_handler("unblocked", lambda iq: pushes.put_nowait(("unblock", iq["unblock"]["items"])))

    await blocker.login(args.host, args.port)
    await blocked.login(args.host, args.port)
    xep_0191 = blocker.plugin["xep_0191"]

    iq = await xep_0191.get_blocked(timeout=STEP)
    say("BLOCKLIST_BEFORE", jids(iq["blocklist"]["items"]))
    await xep_0191.block(JID(blocked_bare), timeout=STEP)
    say("BLOCKED")
    kind, items = await asyncio.wait_for(pushes.get(), STEP)
    say("PUSH", kind, jids(items))
    iq = await xep_0191.get_blocked(timeout=STEP)
    say("BLOCKLIST", jids(iq["blocklist"]["items"]))

    blocked.send_message(mto=blocker_bare, mbody=args.body + " (blocked)", mtype="chat")
    err = await asyncio.wait_for(errors.get(), STEP)
    say("ERROR", err["error"]["condition"], err["error"]["type"])
    try:
        body = await asyncio.wait_for(received.get(), QUIET)
        say("RECEIVED_WHILE_BLOCKED", body)
    except asyncio.TimeoutError:
        say("NOTHING_WHILE_BLOCKED")

    blocker.send_message(mto=blocked_bare, mbody="are you there?", mtype="chat")
    err = await asyncio.wait_for(blocker_errors.get(), STEP)
    app = err["error"].xml.find("{%s}blocked" % NS_BLOCKING_ERRORS)
    say("BLOCKER_ERROR", err["error"]["condition"], "blocked" if app is not None else "no-blocked")

    await xep_0191.unblock(JID(blocked_bare), timeout=STEP)
    say("UNBLOCKED")
    kind, items = await asyncio.wait_for(pushes.get(), STEP)
    say("PUSH", kind, jids(items))

    blocked.send_message(mto=blocker_bare, mbody=args.body, mtype="chat")
    say("RECEIVED", await asyncio.wait_for(received.get(), STEP))

    await asyncio.gather(blocker.logout(), blocked.logout())
    say("OK")


def main():
    p = common.parser(__doc__, logins=("blocker-", "blocked-"))
    p.add_argument("--body", required=True)
    args = p.parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
