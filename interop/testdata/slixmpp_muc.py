#!/usr/bin/python3
"""slixmpp's own XEP-0045 plugin (xep_0045) chats in a room of adhocd's service.

Run by interop/muc_test.go with Debian's /usr/bin/python3 and
python3-slixmpp 1.8.3. Two clients log in as in common.py. The owner joins
a room that does not exist (join_muc_wait), which creates it locked; it
reads the configuration form (get_room_config) and submits it as it is
(set_room_config), which unlocks the room. The other client joins, the owner
sends a group chat message that the other receives from the owner's room
JID, the other sends one back, and the owner kicks the other
(set_role … none), who sees its own unavailable presence with status 307.

Lines on stdout the test reads, besides common.Client's (slixmpp 1.8.3's
xep_0045 also prints the delay of each message it sees while joining; the
test keeps only these):

    CREATED <status codes of the owner's self-presence, sorted>
    CONFIGURED <the form's FORM_TYPE>
    JOINED <nick> <occupants seen at join, sorted>
    GROUPCHAT <to> <from nick> <body>
    KICKED <status codes, sorted>
    OK

Exits 0 when every step happened, 1 on any error and 2 on the overall
timeout.
"""

import asyncio
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from slixmpp import JID  # noqa: E402

import common  # noqa: E402
from common import say  # noqa: E402

STEP = 10  # seconds any single answer may take


def codes(pres):
    return ",".join(sorted(str(c) for c in pres["muc"]["status_codes"])) or "-"


async def run(args):
    room = JID(args.room)
    owner = common.Client("owner", args.owner_jid, args.owner_password, args.cafile,
                          plugins=("xep_0030", "xep_0045"))
    other = common.Client("other", args.other_jid, args.other_password, args.cafile,
                          plugins=("xep_0030", "xep_0045"))
    got = {"owner": asyncio.Queue(), "other": asyncio.Queue()}
    kicked = asyncio.Queue()
    owner.add_event_handler("groupchat_message", lambda m: got["owner"].put_nowait(m))
    other.add_event_handler("groupchat_message", lambda m: got["other"].put_nowait(m))

    def on_presence(pres):
        if pres["type"] == "unavailable" and pres["from"] == JID("%s/bob" % room):
            kicked.put_nowait(pres)

    other.add_event_handler("muc::%s::presence" % room, on_presence)

    await owner.login(args.host, args.port)
    await other.login(args.host, args.port)
    muc_owner, muc_other = owner.plugin["xep_0045"], other.plugin["xep_0045"]

    self_presence, _subject, _occupants, _history = await muc_owner.join_muc_wait(room, "alice", timeout=STEP)
    say("CREATED", codes(self_presence))
    form = await muc_owner.get_room_config(room, timeout=STEP)
    form_type = form.get_fields()["FORM_TYPE"]["value"]
    if isinstance(form_type, list):  # a hidden field's value comes as a list
        form_type = form_type[0]
    say("CONFIGURED", form_type)
    await muc_owner.set_room_config(room, form, timeout=STEP)

    _self, _subject, occupants, _history = await muc_other.join_muc_wait(room, "bob", timeout=STEP)
    say("JOINED", "bob", ",".join(sorted(p["from"].resource for p in occupants)))

    owner.send_message(mto=room, mbody=args.body, mtype="groupchat")
    while True:
        msg = await asyncio.wait_for(got["other"].get(), STEP)
        if msg["body"] == args.body:
            say("GROUPCHAT", "other", msg["from"].resource, msg["body"])
            break
    other.send_message(mto=room, mbody="hello from bob", mtype="groupchat")
    while True:
        msg = await asyncio.wait_for(got["owner"].get(), STEP)
        if msg["body"] == "hello from bob":
            say("GROUPCHAT", "owner", msg["from"].resource, msg["body"])
            break

    await muc_owner.set_role(room, "bob", "none", reason="test", timeout=STEP)
    pres = await asyncio.wait_for(kicked.get(), STEP)
    say("KICKED", codes(pres))

    await asyncio.gather(owner.logout(), other.logout())
    say("OK")


def main():
    p = common.parser(__doc__, logins=("owner-", "other-"))
    p.add_argument("--room", required=True)
    p.add_argument("--body", required=True)
    args = p.parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
