#!/usr/bin/python3
"""Slixmpp's avatar plugins see one avatar whichever way it was set (XEP-0398).

Run by interop/avatars_test.go with Debian's /usr/bin/python3 and
python3-slixmpp 1.8.3. Three accounts: bob is a contact of alice and of
carol, with a subscription both ways (the test sets up the rosters); alice
and carol are not each other's. Every client logs in as in common.py
(STARTTLS, the server's certificate as the only CA, SCRAM), sends presence
and fetches its roster.

  - bob loads what an app showing both kinds of avatar loads: xep_0054 and
    xep_0153 (vCard-based avatars, the hash in presence) and xep_0084 with
    xep_0115, whose caps carry urn:xmpp:avatar:metadata+notify; he waits
    until the server asked for the features behind his caps;
  - alice has xep_0084 only (no xep_0153: her presence carries no hash of
    its own). She publishes an avatar as slixmpp_pep.py does,
    publish_avatar then publish_avatar_metadata with --alice-type, and
    sends presence again; bob's xep_0153 fires vcard_avatar_update with the
    hash the server put in that presence, and bob fetches alice's vCard
    (get_vcard) and prints its PHOTO;
  - carol has xep_0054 and xep_0153 only, and sets her avatar with xep_0153
    set_avatar (a vCard with a PHOTO); bob gets the XEP-0084 metadata
    notification the server publishes for it (avatar_metadata_publish),
    retrieves the data (retrieve_avatar) and prints it, and gets the hash
    in carol's presence too.

Lines on stdout the test reads:

    MECHANISM <role> <SASL mechanism name>
    CAPS_QUERIED bob <node#ver the server asked for>
    PUBLISHED <avatar-data|avatar-metadata> <item id the server returned>
    AVATAR_UPDATE <alice|carol> <photo of vcard_avatar_update bob got>
    VCARD_PHOTO alice {"type": TYPE, "binval": the BINVAL's bytes in base64}
    AVATAR_META carol {"id", "type", "bytes"}
    AVATAR_DATA carol <the bytes of retrieve_avatar, base64>
    STEP_FAILED <what> <reason>     (a step's check failed; the script goes on)
    OK                              (every step ran)

Exits 0 when every step ran, 1 on any error, 2 on the overall timeout.
"""

import asyncio
import base64
import json
import os
import sys

# common.py sits next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import say  # noqa: E402
from slixmpp.xmlstream.handler import Callback  # noqa: E402
from slixmpp.xmlstream.matcher import StanzaPath  # noqa: E402

WAIT = 10  # seconds for one notification or presence


class Bob(common.Client):
    """bob: vCard and PEP avatars; records what he hears of each contact.

    updates maps a contact's bare JID to a future of the first non-empty
    photo of vcard_avatar_update, metas to one of the first
    avatar_metadata_publish's info.
    """

    def __init__(self, jid, password, cafile):
        super().__init__("bob", jid, password, cafile, roster=True, plugins=(
            "xep_0030", "xep_0115", "xep_0163", "xep_0060", "xep_0084", "xep_0054", "xep_0153"))
        self.updates, self.metas = {}, {}
        self.caps_queried = asyncio.get_running_loop().create_future()
        self.add_event_handler("vcard_avatar_update", self._on_update)
        self.add_event_handler("avatar_metadata_publish", self._on_meta)
        self.register_handler(Callback("caps query", StanzaPath("iq@type=get/disco_info"), self._on_disco_get))

    @staticmethod
    def _future(table, who):
        if who not in table:
            table[who] = asyncio.get_running_loop().create_future()
        return table[who]

    def _on_disco_get(self, iq):
        node = iq["disco_info"]["node"] or ""
        if "#" in node and not self.caps_queried.done():
            self.caps_queried.set_result(node)

    def _on_update(self, pres):
        photo = pres["vcard_temp_update"]["photo"]
        fut = self._future(self.updates, pres["from"].bare)
        if photo and not fut.done():
            fut.set_result(photo)

    def _on_meta(self, msg):
        info = msg["pubsub_event"]["items"]["item"]["avatar_metadata"]["info"]
        fut = self._future(self.metas, msg["from"].bare)
        if not fut.done():
            fut.set_result({"id": info["id"], "type": info["type"], "bytes": info["bytes"]})

    async def heard(self, table, who, what):
        """What bob heard of who in table, or None (reported) within WAIT."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._future(table, who)), WAIT)
        except asyncio.TimeoutError:
            say("STEP_FAILED", what, "nothing from %s within %ds" % (who, WAIT))
            return None


def b64(data):
    return base64.b64encode(data).decode("ascii")


async def run(args):
    with open(args.alice_avatar, "rb") as f:
        alice_img = f.read()
    with open(args.carol_avatar, "rb") as f:
        carol_img = f.read()
    bob = Bob(args.bob_jid, args.bob_password, args.cafile)
    alice = common.Client("alice", args.alice_jid, args.alice_password, args.cafile, roster=True,
                          plugins=("xep_0030", "xep_0163", "xep_0060", "xep_0084"))
    carol = common.Client("carol", args.carol_jid, args.carol_password, args.cafile, roster=True,
                          plugins=("xep_0030", "xep_0054", "xep_0153"))
    await bob.login(args.host, args.port)
    try:
        say("CAPS_QUERIED", "bob", await asyncio.wait_for(asyncio.shield(bob.caps_queried), WAIT))
    except asyncio.TimeoutError:
        say("STEP_FAILED", "caps", "the server did not ask bob for his caps within %ds" % WAIT)
    await alice.login(args.host, args.port)
    await carol.login(args.host, args.port)

    # XEP-0084 to vCard: alice publishes, bob sees a vCard avatar.
    res = await alice["xep_0084"].publish_avatar(alice_img)
    say("PUBLISHED", "avatar-data", res["pubsub"]["publish"]["item"]["id"])
    res = await alice["xep_0084"].publish_avatar_metadata({
        "id": alice["xep_0084"].generate_id(alice_img), "type": args.alice_type, "bytes": len(alice_img)})
    say("PUBLISHED", "avatar-metadata", res["pubsub"]["publish"]["item"]["id"])
    alice.send_presence()
    photo = await bob.heard(bob.updates, alice.boundjid.bare, "alice-presence")
    if photo is not None:
        say("AVATAR_UPDATE", "alice", photo)
        vcard = await bob["xep_0054"].get_vcard(alice.boundjid.bare)
        p = vcard["vcard_temp"]["PHOTO"]
        say("VCARD_PHOTO", "alice", json.dumps({"type": p["TYPE"], "binval": b64(p["BINVAL"] or b"")}))

    # vCard to XEP-0084: carol sets a vCard avatar, bob sees a PEP one.
    await carol["xep_0153"].set_avatar(avatar=carol_img, mtype="image/png")
    meta = await bob.heard(bob.metas, carol.boundjid.bare, "carol-metadata")
    if meta is not None:
        say("AVATAR_META", "carol", json.dumps(meta))
        got = await bob["xep_0084"].retrieve_avatar(carol.boundjid.bare, meta["id"])
        items = [it for it in got["pubsub"]["items"] if it.name == "item"]
        if len(items) != 1 or items[0]["id"] != meta["id"]:
            say("STEP_FAILED", "carol-data", "retrieve_avatar returned %s" % got)
        else:
            say("AVATAR_DATA", "carol", b64(items[0]["avatar_data"]["value"]))
    photo = await bob.heard(bob.updates, carol.boundjid.bare, "carol-presence")
    if photo is not None:
        say("AVATAR_UPDATE", "carol", photo)

    await asyncio.gather(alice.logout(), bob.logout(), carol.logout())
    say("OK")


def main():
    p = common.parser(__doc__, logins=("alice-", "bob-", "carol-"), timeout=30.0)
    p.add_argument("--alice-avatar", required=True, help="alice's image file")
    p.add_argument("--alice-type", required=True, help="its media type")
    p.add_argument("--carol-avatar", required=True, help="carol's PNG file")
    args = p.parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
