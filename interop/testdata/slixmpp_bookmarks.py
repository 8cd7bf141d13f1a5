#!/usr/bin/python3
"""One bookmark list through XEP-0402 and both XEP-0048 storages, with slixmpp.

Run by interop/bookmarks_test.go with Debian's /usr/bin/python3 and
python3-slixmpp 1.8.3. One client, alice, logs in as in common.py
(STARTTLS, the server's certificate as the only CA, SCRAM) with xep_0060,
xep_0223 and xep_0048, and plays in turn a XEP-0402 client (as
Conversations) and the two kinds of XEP-0048 client:

  a. --native: XEP-0402 §3.3, one xep_0060 publish per room to
     urn:xmpp:bookmarks:1, the room's JID as item id, a <conference/> with
     name, autojoin and <nick/> as payload, and the publish-options
     pubsub#persist_items true, pubsub#max_items max,
     pubsub#send_last_published_item never, pubsub#access_model whitelist;
     then xep_0048 get_bookmarks with method='xep_0049' (private XML
     storage) and with method='xep_0223' (the PEP node storage:bookmarks);
  b. --private: xep_0048 set_bookmarks with method='xep_0049', then
     xep_0060 get_items of urn:xmpp:bookmarks:1, and get_bookmarks with
     method='xep_0223';
  c. --pep: xep_0048 set_bookmarks with method='xep_0223' (xep_0223's
     publish-options, item "current"), then get_items of
     urn:xmpp:bookmarks:1 again.

A list of rooms is JSON: [{"jid", "name", "nick", "autojoin"}, ...].

Lines on stdout the test reads (a list of rooms after the label):

    MECHANISM alice <SASL mechanism name>
    PUBLISHED <item id the server returned>
    ROOMS <xep_0049|xep_0223|xep_0223-after-private> <rooms of get_bookmarks>
    ROOMS <after-private|after-pep> <rooms of the XEP-0402 node, item ids as jid>
    OK                                (every step ran)

Exits 0 when every step ran, 1 on any error, 2 on the overall timeout.
"""

import asyncio
import json
import os
import sys

# common.py sits next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import say  # noqa: E402
from slixmpp.plugins.xep_0048 import Bookmarks  # noqa: E402
from slixmpp.xmlstream import ET  # noqa: E402

NS = "urn:xmpp:bookmarks:1"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"


def native_options(client):
    """XEP-0402 §3.3's publish-options (XEP-0060 §7.1.5)."""
    form = client["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value=NS_PUBSUB + "#publish-options")
    form.add_field(var="pubsub#persist_items", value="true")
    form.add_field(var="pubsub#max_items", value="max")
    form.add_field(var="pubsub#send_last_published_item", value="never")
    form.add_field(var="pubsub#access_model", value="whitelist")
    return form


def conference_xml(room):
    c = ET.Element("{%s}conference" % NS, name=room["name"], autojoin="true" if room["autojoin"] else "false")
    ET.SubElement(c, "{%s}nick" % NS).text = room["nick"]
    return c


def legacy(rooms):
    marks = Bookmarks()
    for r in rooms:
        marks.add_conference(r["jid"], r["nick"], name=r["name"], autojoin=r["autojoin"])
    return marks


def legacy_rooms(marks):
    return [{"jid": str(c["jid"]), "name": c["name"], "nick": c["nick"], "autojoin": bool(c["autojoin"])}
            for c in marks["conferences"]]


def native_rooms(iq):
    """The rooms of a get_items result of urn:xmpp:bookmarks:1, read as a
    XEP-0402 client reads them."""
    out = []
    for it in iq["pubsub"]["items"].xml.findall("{%s}item" % NS_PUBSUB):
        c = it.find("{%s}conference" % NS)
        if c is None:
            raise RuntimeError("item %s has no conference: %s" % (it.get("id"), ET.tostring(it).decode()))
        out.append({"jid": it.get("id"), "name": c.get("name"), "nick": c.findtext("{%s}nick" % NS),
                    "autojoin": c.get("autojoin") in ("true", "1")})
    return out


async def pep_bookmarks(client):
    """The rooms of xep_0048 get_bookmarks from PEP (storage:bookmarks)."""
    got = await client["xep_0048"].get_bookmarks(method="xep_0223")
    rooms = []
    for it in got["pubsub"]["items"]:
        if it.name == "item":
            rooms += legacy_rooms(it["bookmarks"])
    return rooms


def say_rooms(label, rooms):
    say("ROOMS", label, json.dumps(rooms, ensure_ascii=False))


async def run(args):
    alice = common.Client("alice", args.jid, args.password, args.cafile,
                          plugins=("xep_0030", "xep_0060", "xep_0163", "xep_0223", "xep_0048"))
    await alice.login(args.host, args.port)
    pubsub = alice["xep_0060"]

    # a. XEP-0402, read back through XEP-0048.
    for room in json.loads(args.native):
        res = await pubsub.publish(None, NS, id=room["jid"], payload=conference_xml(room),
                                   options=native_options(alice))
        say("PUBLISHED", res["pubsub"]["publish"]["item"]["id"])
    got = await alice["xep_0048"].get_bookmarks(method="xep_0049")
    say_rooms("xep_0049", legacy_rooms(got["private"]["bookmarks"]))
    say_rooms("xep_0223", await pep_bookmarks(alice))

    # b. XEP-0048 in private XML storage.
    await alice["xep_0048"].set_bookmarks(legacy(json.loads(args.private)), method="xep_0049")
    say_rooms("after-private", native_rooms(await pubsub.get_items(None, NS)))
    say_rooms("xep_0223-after-private", await pep_bookmarks(alice))

    # c. XEP-0048 in PEP.
    await alice["xep_0048"].set_bookmarks(legacy(json.loads(args.pep)), method="xep_0223")
    say_rooms("after-pep", native_rooms(await pubsub.get_items(None, NS)))

    await alice.logout()
    say("OK")


def main():
    p = common.parser(__doc__, timeout=30.0)
    p.add_argument("--native", required=True, help="rooms to publish with XEP-0402, JSON")
    p.add_argument("--private", required=True, help="rooms to store with XEP-0048 in private XML storage, JSON")
    p.add_argument("--pep", required=True, help="rooms to store with XEP-0048 in PEP, JSON")
    args = p.parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
