#!/usr/bin/python3
"""Slixmpp's own plugins keep and read per-account data through adhocd.

Run by interop/userdata_test.go with Debian's /usr/bin/python3 and
python3-slixmpp 1.8.3. Three clients log in as in common.py (STARTTLS with
the server's self-signed certificate as the only CA, SCRAM) and send
initial presence: the owner, a contact whose presence subscription the
owner's roster grants (the Go test writes that roster item before the
script runs), and a stranger with none. Then:

  - XEP-0054: the owner reads its own vCard from the server (none yet),
    publishes one with FN and NICKNAME and reads it back; the contact reads
    it through the owner's bare JID (get_vcard);
  - XEP-0049: the owner stores a fragment of a namespace of the test's own
    and retrieves it;
  - XEP-0048: the owner stores bookmarks in private storage and reads them
    back (set_bookmarks / get_bookmarks with method='xep_0049');
  - XEP-0012: the contact asks the server's last activity (its uptime) and
    the owner's (online: 0); the stranger asks the owner's and gets an
    error.

Lines on stdout the test reads (values that are text are JSON strings):

    MECHANISM <role> <SASL mechanism name>
    VCARD_OWN_BEFORE <number of child elements>
    VCARD_OWN <FN> <NICKNAME>
    VCARD_READ <FN> <NICKNAME>
    PRIVATE <nick>
    BOOKMARK <jid> <nick> <autojoin> <name>
    LAST_SERVER <seconds>
    LAST_CONTACT <seconds>
    LAST_STRANGER_ERROR <type> <condition>
    OK

Exits 0 only when every step got an answer; exits 1 on any error and 2 on
the overall timeout.
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

from slixmpp.exceptions import IqError  # noqa: E402
from slixmpp.plugins.xep_0048 import Bookmarks  # noqa: E402
from slixmpp.xmlstream import ElementBase  # noqa: E402


class Prefs(ElementBase):
    """A client's preferences, as XEP-0049's exodus example keeps them."""

    name = "prefs"
    namespace = "urn:adhocd:interop:prefs"
    plugin_attrib = "adhocd_prefs"
    interfaces = {"defaultnick"}
    sub_interfaces = interfaces


def text(v):
    return json.dumps(v, ensure_ascii=False)


async def run(args):
    owner = common.Client("owner", args.owner_jid, args.owner_password, args.cafile,
                          plugins=("xep_0054", "xep_0049", "xep_0048", "xep_0012"))
    contact = common.Client("contact", args.contact_jid, args.contact_password, args.cafile,
                            plugins=("xep_0054", "xep_0012"))
    stranger = common.Client("stranger", args.stranger_jid, args.stranger_password, args.cafile,
                             plugins=("xep_0012",))
    for c in (owner, contact, stranger):
        await c.login(args.host, args.port)
    owner_bare = owner.boundjid.bare

    # XEP-0054. local=False: ask the server, not slixmpp's cache.
    before = await owner["xep_0054"].get_vcard(owner_bare, local=False)
    say("VCARD_OWN_BEFORE", len(list(before["vcard_temp"].xml)))
    vcard = owner["xep_0054"].make_vcard()
    vcard["FN"] = args.fn
    vcard["NICKNAME"] = args.nick
    await owner["xep_0054"].publish_vcard(vcard)
    own = await owner["xep_0054"].get_vcard(owner_bare, local=False)
    say("VCARD_OWN", text(own["vcard_temp"]["FN"]), text(",".join(own["vcard_temp"]["NICKNAME"] or [])))
    read = await contact["xep_0054"].get_vcard(owner_bare)
    say("VCARD_READ", text(read["vcard_temp"]["FN"]), text(",".join(read["vcard_temp"]["NICKNAME"] or [])))

    # XEP-0049.
    owner["xep_0049"].register(Prefs)
    prefs = Prefs()
    prefs["defaultnick"] = args.nick
    await owner["xep_0049"].store(prefs)
    got = await owner["xep_0049"].retrieve("adhocd_prefs")
    say("PRIVATE", text(got["private"]["adhocd_prefs"]["defaultnick"]))

    # XEP-0048 in private storage.
    marks = Bookmarks()
    marks.add_conference(args.room, args.nick, name=args.room_name, autojoin=True)
    await owner["xep_0048"].set_bookmarks(marks, method="xep_0049")
    got = await owner["xep_0048"].get_bookmarks(method="xep_0049")
    for conf in got["private"]["bookmarks"]["conferences"]:
        say("BOOKMARK", text(str(conf["jid"])), text(conf["nick"]), text(conf["autojoin"]), text(conf["name"]))

    # XEP-0012.
    server = await contact["xep_0012"].get_last_activity(owner.boundjid.domain)
    say("LAST_SERVER", server["last_activity"]["seconds"])
    last = await contact["xep_0012"].get_last_activity(owner_bare)
    say("LAST_CONTACT", last["last_activity"]["seconds"])
    try:
        await stranger["xep_0012"].get_last_activity(owner_bare)
        say("LAST_STRANGER_ANSWERED")
    except IqError as e:
        say("LAST_STRANGER_ERROR", e.iq["error"]["type"], e.iq["error"]["condition"])

    await asyncio.gather(owner.logout(), contact.logout(), stranger.logout())
    say("OK")


def main():
    p = common.parser(__doc__, logins=("owner-", "contact-", "stranger-"))
    p.add_argument("--fn", required=True)
    p.add_argument("--nick", required=True)
    p.add_argument("--room", required=True)
    p.add_argument("--room-name", required=True)
    args = p.parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
