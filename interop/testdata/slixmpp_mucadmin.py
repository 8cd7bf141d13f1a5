#!/usr/bin/python3
"""slixmpp's xep_0050 runs the group chat service's administration commands.

Run by interop/mucadmin_test.go with Debian's /usr/bin/python3 and
python3-slixmpp 1.8.3. Three clients log in as in common.py: the server's
administrator, the owner of a room and another user. The owner creates the
room with xep_0045 (join_muc_wait, then the configuration form read and
submitted with --room-name as its name) and the other user joins it.

The administrator then lists the commands of the service's JID
(get_commands) and runs them with xep_0050's requester API, through the
Flow of slixmpp_adhoc_requester.py (start_command, complete_command with an
xep_0004 form of type submit): list-rooms; set-affiliation making the other
user an admin of the room (both clients see its new presence); and
destroy-room with a reason and an alternate venue (both clients get the
unavailable presence with the <destroy/>). Last, the owner, who is no
administrator, lists the service's commands and runs list-rooms.

Lines on stdout (JSON after the label), besides common.Client's:

    COMMANDS <role> [{"jid", "node", "name"}, ...]
    RESPONSE <label> <the <command/> reply as slixmpp_adhoc_requester.py
                      describes it, with "items": the rows of a multi-item
                      result form as {var: value}>
    AFFILIATION <role> {"affiliation", "role", "reason"}
    DESTROYED <role> {"codes", "jid", "reason"}
    REFUSED <label> {"type", "condition"}
    OK

Exits 0 when every step happened, 1 on any error and 2 on the overall
timeout.
"""

import asyncio
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from slixmpp import JID  # noqa: E402

import common  # noqa: E402
from common import say  # noqa: E402
from slixmpp_adhoc_requester import CommandError, Flow, describe, submit  # noqa: E402
from slixmpp_xep0133 import quiet_unretrieved_iq_errors  # noqa: E402

NS_DATA = "jabber:x:data"
NS_MUC_COMMANDS = "urn:adhocd:muc"
STEP = 10  # seconds any single answer may take


def node(name):
    return NS_MUC_COMMANDS + "#" + name


def report(label, iq):
    """Print and return the RESPONSE of a command reply."""
    d = describe(iq)
    d["items"] = []
    cmd = iq["command"]
    if cmd.xml.find("{%s}x" % NS_DATA) is not None:
        for item in cmd["form"].get_items():
            d["items"].append({var: str(value) for var, value in item.items()})
    say("RESPONSE", label, json.dumps(d, sort_keys=True))
    return d


class Watcher:
    """The presence a client receives from the room's occupants, kept in
    order; wait() finds one that a test accepts."""

    def __init__(self, client, room):
        self.seen = []
        self.changed = asyncio.Event()
        client.add_event_handler("muc::%s::presence" % room, self._on_presence)

    def _on_presence(self, pres):
        self.seen.append(pres)
        self.changed.set()

    async def wait(self, test, why):
        found = []

        def check():
            for p in self.seen:
                if test(p):
                    found.append(p)
                    return True
            return False
        await common.until(self.changed, check, STEP, why)
        return found[0]


async def commands(client, role, service):
    iq = await client["xep_0050"].get_commands(jid=service)
    items = [{"jid": str(j), "node": n, "name": name} for j, n, name in iq["disco_items"]["items"]]
    say("COMMANDS", role, json.dumps(items, sort_keys=True))


async def run(args):
    # The refused command's error reaches the session's handler; asyncio
    # would also report the future xep_0050 drops.
    asyncio.get_running_loop().set_exception_handler(quiet_unretrieved_iq_errors)
    room, service = JID(args.room), JID(args.room).domain
    admin = common.Client("admin", args.admin_jid, args.admin_password, args.cafile,
                          plugins=("xep_0030", "xep_0004", "xep_0050"))
    owner = common.Client("owner", args.owner_jid, args.owner_password, args.cafile,
                          plugins=("xep_0030", "xep_0004", "xep_0045", "xep_0050"))
    other = common.Client("other", args.other_jid, args.other_password, args.cafile,
                          plugins=("xep_0030", "xep_0045"))
    watch = {"owner": Watcher(owner, room), "other": Watcher(other, room)}
    for c in (admin, owner, other):
        await c.login(args.host, args.port)

    await owner.plugin["xep_0045"].join_muc_wait(room, "alice", timeout=STEP)
    form = await owner.plugin["xep_0045"].get_room_config(room, timeout=STEP)
    form.get_fields()["muc#roomconfig_roomname"]["value"] = args.room_name
    await owner.plugin["xep_0045"].set_room_config(room, form, timeout=STEP)
    await other.plugin["xep_0045"].join_muc_wait(room, "bob", timeout=STEP)

    await commands(admin, "admin", service)
    report("list-rooms", await Flow(admin, service, node("list-rooms")).start())

    flow = Flow(admin, service, node("set-affiliation"))
    report("set-affiliation-form", await flow.start())
    report("set-affiliation", await flow.complete(submit(admin, {
        "room": ("jid-single", str(room)),
        "jid": ("jid-single", args.other_jid),
        "affiliation": ("list-single", "admin"),
        "reason": ("text-single", args.reason),
    })))
    bob = JID("%s/bob" % room)
    for role, w in watch.items():
        p = await w.wait(lambda p: p["from"] == bob and p["type"] != "unavailable" and p["muc"]["affiliation"] == "admin",
                         "%s: no presence of bob as an admin" % role)
        say("AFFILIATION", role, json.dumps({"affiliation": p["muc"]["affiliation"], "role": p["muc"]["role"],
                                             "reason": p["muc"]["item"]["reason"]}, sort_keys=True))

    flow = Flow(admin, service, node("destroy-room"))
    report("destroy-room-form", await flow.start())
    report("destroy-room", await flow.complete(submit(admin, {
        "room": ("jid-single", str(room)),
        "reason": ("text-single", args.reason),
        "venue": ("jid-single", args.venue),
    })))
    for role, nick in (("owner", "alice"), ("other", "bob")):
        me = JID("%s/%s" % (room, nick))
        p = await watch[role].wait(lambda p: p["from"] == me and p["type"] == "unavailable",
                                   "%s: no unavailable presence" % role)
        d = p["muc"]["destroy"]
        say("DESTROYED", role, json.dumps({"codes": sorted(str(c) for c in p["muc"]["status_codes"]),
                                           "jid": str(d["jid"]), "reason": d["reason"]}, sort_keys=True))

    await commands(owner, "owner", service)
    try:
        await Flow(owner, service, node("list-rooms")).start()
        raise RuntimeError("the owner, no administrator, ran list-rooms")
    except CommandError as e:
        typ, condition = str(e).split(" ")[:2]
        say("REFUSED", "owner-list-rooms", json.dumps({"type": typ.rstrip(":"), "condition": condition}, sort_keys=True))

    await asyncio.gather(admin.logout(), owner.logout(), other.logout())
    say("OK")


def main():
    p = common.parser(__doc__, logins=("admin-", "owner-", "other-"))
    p.add_argument("--room", required=True)
    p.add_argument("--room-name", required=True)
    p.add_argument("--reason", required=True)
    p.add_argument("--venue", required=True)
    args = p.parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
