#!/usr/bin/python3
"""Three slixmpp clients use adhocd's PEP service (XEP-0163) as apps do.

Run by interop/pep_test.go with Debian's /usr/bin/python3 and
python3-slixmpp 1.8.3. alice and bob are contacts with a subscription both
ways (the test sets up their rosters); carol is neither's contact. Every
client logs in as in common.py (STARTTLS, the server's certificate as the
only CA, SCRAM) and sends presence; alice and bob carry XEP-0115 caps, and
bob's disco#info holds the +notify features slixmpp's plugins register
(XEP-0084 avatar metadata, XEP-0172 nick, XEP-0118 tune) and one the script
adds with xep_0163's add_interest (the OMEMO device list), so the server
learns from his caps which notifications he wants.

The steps:

  1. bob logs in and waits until the server asked for the disco#info behind
     his caps (XEP-0115 §6.3), and answers it, as slixmpp does by itself;
  2. alice publishes an avatar with xep_0084: publish_avatar (the PNG of
     --avatar, item id its SHA-1), then publish_avatar_metadata with its id,
     type and size; bob gets the metadata notification
     (avatar_metadata_publish), then fetches the data with retrieve_avatar
     and compares the bytes;
  3. alice publishes her nick (xep_0172 publish_nick); bob gets it
     (user_nick_publish);
  4. alice publishes an OMEMO device list and bundle (XEP-0384 0.3, the
     eu.siacs.conversations.axolotl namespace that deployed clients use)
     through xep_0060 publish with publish-options pubsub#access_model=open
     (a slixmpp Form); bob gets the device list notification; carol fetches
     the bundle and the device list with xep_0060 get_items and compares
     them with what was published, and is refused alice's nick (a node of
     the default presence access model);
  5. bob logs out, alice publishes a tune (xep_0118 publish_tune), bob logs
     in again with a new resource and gets the last item of alice's tune
     and of her nick as his session starts (XEP-0163 §4.3.2).

--omemo is JSON: {"device": id, "spk_id": id, "spk": b64, "sig": b64,
"ik": b64, "prekeys": [[id, b64], ...]}.

Lines on stdout the test reads (JSON after the keyword, except NICK lines):

    MECHANISM <role> <SASL mechanism name>
    CAPS_QUERIED <role> <node#ver the server asked for>
    CAPS_NOT_QUERIED <role>         (no caps query within 10 s)
    PUBLISHED <what> <item id the server returned>
    AVATAR_META {"id", "type", "bytes", "from"}
    AVATAR_OK <sha1 of the bytes bob retrieved>
    NICK <nick bob was notified of>
    DEVICELIST_NOTIFIED [ids]
    BUNDLE {what carol read}          then BUNDLE_OK when it is what alice published
    DEVICELIST {"ids": [...]}         then DEVICELIST_OK
    DENIED <what> <condition> <pubsub#errors condition or ->
    LAST_TUNE {"artist", "title"}
    LAST_NICK <nick>
    STEP_FAILED <what> <reason>       (a step's check failed; the script goes on)
    OK                                (every step ran)

Exits 0 when every step ran (checks that fail print STEP_FAILED and the Go
test fails on them), 1 on any error, 2 on the overall timeout.
"""

import asyncio
import hashlib
import json
import os
import sys

# common.py sits next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import say  # noqa: E402
from slixmpp.exceptions import IqError  # noqa: E402
from slixmpp.xmlstream import ET  # noqa: E402
from slixmpp.xmlstream.handler import Callback  # noqa: E402
from slixmpp.xmlstream.matcher import StanzaPath  # noqa: E402

NS_OMEMO = "eu.siacs.conversations.axolotl"
NODE_DEVICES = NS_OMEMO + ".devicelist"
NODE_BUNDLES = NS_OMEMO + ".bundles:"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_ERRORS = NS_PUBSUB + "#errors"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
PEP_PLUGINS = ("xep_0030", "xep_0115", "xep_0163", "xep_0060", "xep_0084", "xep_0172", "xep_0118")
WAIT = 10  # seconds for one notification


class PEPClient(common.Client):
    """A client that records the PEP notifications it gets and the server's
    caps queries.

    events maps (publisher's bare JID, node) to a future of the first
    notification's <item/> payload (an ElementTree element).
    """

    def __init__(self, role, jid, password, cafile, interests=()):
        super().__init__(role, jid, password, cafile, plugins=PEP_PLUGINS, roster=True)
        self.interests = interests
        self.events = {}
        self.caps_queried = asyncio.get_running_loop().create_future()
        self.add_event_handler("session_bind", self._on_bind)
        self.add_event_handler("pubsub_publish", self._on_publish)
        # Beside xep_0030's own handler, which answers: watch for the
        # server asking for the features behind our caps (node#ver).
        self.register_handler(Callback("PEP caps query", StanzaPath("iq@type=get/disco_info"), self._on_disco_get))

    def _on_bind(self, _jid):
        # After the plugins' session_bind (handlers run in the order they
        # were added): XEP-0163 §4.2 interest, node+"+notify" in disco#info.
        for ns in self.interests:
            self["xep_0163"].add_interest(ns)

    def _on_disco_get(self, iq):
        node = iq["disco_info"]["node"] or ""
        if "#" in node and not self.caps_queried.done():
            self.caps_queried.set_result(node)

    def pep_event(self, publisher, node):
        key = (publisher, node)
        if key not in self.events:
            self.events[key] = asyncio.get_running_loop().create_future()
        return self.events[key]

    def _on_publish(self, msg):
        items = msg["pubsub_event"]["items"]
        fut = self.pep_event(msg["from"].bare, items["node"])
        # Through ElementTree: iterating the stanza object here would reset
        # the iteration xep_0060 is in the middle of (an ElementBase is its
        # own iterator) and loop forever.
        for it in items.xml.findall("{%s#event}item" % NS_PUBSUB):
            if len(it) > 0 and not fut.done():
                fut.set_result(it[0])


def child(el, ns, name):
    found = el.find("{%s}%s" % (ns, name))
    if found is None:
        raise RuntimeError("no <%s xmlns='%s'/> in %s" % (name, ns, ET.tostring(el).decode()))
    return found


def open_access(client):
    """publish-options asking for the open access model (XEP-0060 §7.1.5)."""
    form = client["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value=NS_PUBSUB + "#publish-options")
    form.add_field(var="pubsub#access_model", value="open")
    return form


def devicelist_xml(device):
    lst = ET.Element("{%s}list" % NS_OMEMO)
    ET.SubElement(lst, "{%s}device" % NS_OMEMO, id=str(device))
    return lst


def bundle_xml(o):
    b = ET.Element("{%s}bundle" % NS_OMEMO)
    spk = ET.SubElement(b, "{%s}signedPreKeyPublic" % NS_OMEMO, signedPreKeyId=str(o["spk_id"]))
    spk.text = o["spk"]
    ET.SubElement(b, "{%s}signedPreKeySignature" % NS_OMEMO).text = o["sig"]
    ET.SubElement(b, "{%s}identityKey" % NS_OMEMO).text = o["ik"]
    pks = ET.SubElement(b, "{%s}prekeys" % NS_OMEMO)
    for pid, key in o["prekeys"]:
        ET.SubElement(pks, "{%s}preKeyPublic" % NS_OMEMO, preKeyId=str(pid)).text = key
    return b


def read_bundle(el):
    """What a bundle holds, as JSON, read the way an OMEMO client reads it."""
    if el.tag != "{%s}bundle" % NS_OMEMO:
        raise RuntimeError("payload %s is not a bundle" % el.tag)
    spk = child(el, NS_OMEMO, "signedPreKeyPublic")
    return {
        "spk_id": int(spk.get("signedPreKeyId")),
        "spk": spk.text,
        "sig": child(el, NS_OMEMO, "signedPreKeySignature").text,
        "ik": child(el, NS_OMEMO, "identityKey").text,
        "prekeys": [[int(p.get("preKeyId")), p.text]
                    for p in child(el, NS_OMEMO, "prekeys").findall("{%s}preKeyPublic" % NS_OMEMO)],
    }


def read_devices(el):
    if el.tag != "{%s}list" % NS_OMEMO:
        raise RuntimeError("payload %s is not a device list" % el.tag)
    return [int(d.get("id")) for d in el.findall("{%s}device" % NS_OMEMO)]


def only_payload(iq, node):
    """The payload of the one item of a get_items result."""
    items = [it for it in iq["pubsub"]["items"] if it.name == "item"]
    if iq["pubsub"]["items"]["node"] != node or len(items) != 1 or items[0]["payload"] is None:
        raise RuntimeError("want one item with a payload from %s, got %s" % (node, iq))
    return items[0]["payload"]


def error_conditions(e):
    """The defined condition and the pubsub#errors condition of an error."""
    err = e.iq.xml.find("{jabber:client}error")
    cond, app = e.iq["error"]["condition"], "-"
    if err is not None:
        for el in err:
            if el.tag.startswith("{%s}" % NS_PUBSUB_ERRORS):
                app = el.tag.split("}", 1)[1]
    return cond, app


def failed(what, why):
    say("STEP_FAILED", what, why)


async def notified(client, publisher, node, what):
    """The payload of the first notification of node from publisher, or None
    (reported) when none came within WAIT."""
    try:
        return await asyncio.wait_for(asyncio.shield(client.pep_event(publisher, node)), WAIT)
    except asyncio.TimeoutError:
        failed(what, "no notification of %s from %s within %ds" % (node, publisher, WAIT))
        return None


async def run(args):
    omemo = json.loads(args.omemo)
    with open(args.avatar, "rb") as f:
        png = f.read()
    alice = PEPClient("alice", args.alice_jid, args.alice_password, args.cafile)
    bob_interests = (NODE_DEVICES,)
    bob = PEPClient("bob", args.bob_jid, args.bob_password, args.cafile, interests=bob_interests)
    carol = common.Client("carol", args.carol_jid, args.carol_password, args.cafile,
                          plugins=("xep_0030", "xep_0060"), roster=True)
    await alice.login(args.host, args.port)
    await bob.login(args.host, args.port)
    pub = alice.boundjid.bare

    # 1. The server asks bob what his caps stand for.
    try:
        say("CAPS_QUERIED", "bob", await asyncio.wait_for(asyncio.shield(bob.caps_queried), WAIT))
    except asyncio.TimeoutError:
        say("CAPS_NOT_QUERIED", "bob")

    # 2. The avatar (XEP-0084).
    avatar_id = alice["xep_0084"].generate_id(png)
    res = await alice["xep_0084"].publish_avatar(png)
    say("PUBLISHED", "avatar-data", res["pubsub"]["publish"]["item"]["id"])
    res = await alice["xep_0084"].publish_avatar_metadata({"id": avatar_id, "type": "image/png", "bytes": len(png)})
    say("PUBLISHED", "avatar-metadata", res["pubsub"]["publish"]["item"]["id"])
    meta = asyncio.get_running_loop().create_future()

    def on_meta(msg):
        info = msg["pubsub_event"]["items"]["item"]["avatar_metadata"]["info"]
        if not meta.done():
            meta.set_result({"id": info["id"], "type": info["type"], "bytes": info["bytes"], "from": msg["from"].bare})

    bob.add_event_handler("avatar_metadata_publish", on_meta)
    # The notification may have come in before the handler was added.
    early = bob.events.get((pub, "urn:xmpp:avatar:metadata"))
    if early is not None and early.done():
        info = early.result().find("{urn:xmpp:avatar:metadata}info")
        meta.set_result({"id": info.get("id"), "type": info.get("type"), "bytes": int(info.get("bytes")), "from": pub})
    try:
        m = await asyncio.wait_for(meta, WAIT)
        say("AVATAR_META", json.dumps(m))
        got = await bob["xep_0084"].retrieve_avatar(pub, m["id"])
        items = [it for it in got["pubsub"]["items"] if it.name == "item"]
        if len(items) != 1 or items[0]["id"] != m["id"]:
            failed("avatar", "retrieve_avatar returned %s" % got)
        else:
            data = items[0]["avatar_data"]["value"]
            if data != png:
                failed("avatar", "retrieved %d bytes that differ from the %d published" % (len(data), len(png)))
            else:
                say("AVATAR_OK", hashlib.sha1(data).hexdigest())
    except asyncio.TimeoutError:
        failed("avatar", "no avatar_metadata_publish within %ds" % WAIT)

    # 3. The nick (XEP-0172).
    res = await alice["xep_0172"].publish_nick(args.nick)
    say("PUBLISHED", "nick", res["pubsub"]["publish"]["item"]["id"])
    el = await notified(bob, pub, "http://jabber.org/protocol/nick", "nick")
    if el is not None:
        say("NICK", el.text or "")

    # 4. OMEMO: device list and bundle with the open access model.
    res = await alice["xep_0060"].publish(None, NODE_DEVICES, id="current",
                                          payload=devicelist_xml(omemo["device"]), options=open_access(alice))
    say("PUBLISHED", "devicelist", res["pubsub"]["publish"]["item"]["id"])
    bundle_node = NODE_BUNDLES + str(omemo["device"])
    res = await alice["xep_0060"].publish(None, bundle_node, id="current",
                                          payload=bundle_xml(omemo), options=open_access(alice))
    say("PUBLISHED", "bundle", res["pubsub"]["publish"]["item"]["id"])
    el = await notified(bob, pub, NODE_DEVICES, "devicelist-notification")
    if el is not None:
        say("DEVICELIST_NOTIFIED", json.dumps(read_devices(el)))

    await carol.login(args.host, args.port)
    got = read_bundle(only_payload(await carol["xep_0060"].get_items(pub, bundle_node), bundle_node))
    say("BUNDLE", json.dumps(got))
    want = {k: omemo[k] for k in ("spk_id", "spk", "sig", "ik")}
    want["prekeys"] = [[int(i), k] for i, k in omemo["prekeys"]]
    if got == want:
        say("BUNDLE_OK")
    else:
        failed("bundle", "carol read %s, alice published %s" % (got, want))
    devices = read_devices(only_payload(await carol["xep_0060"].get_items(pub, NODE_DEVICES), NODE_DEVICES))
    say("DEVICELIST", json.dumps({"ids": devices}))
    if devices == [int(omemo["device"])]:
        say("DEVICELIST_OK")
    else:
        failed("devicelist", "carol read %s" % devices)
    try:
        await carol["xep_0060"].get_items(pub, "http://jabber.org/protocol/nick")
        failed("nick-denied", "carol, not a contact, read alice's nick")
    except IqError as e:
        say("DENIED", "nick", *error_conditions(e))

    # 5. bob away while alice changes her tune; his next session gets the
    # last items.
    await bob.logout()
    res = await alice["xep_0118"].publish_tune(artist=args.artist, title=args.title)
    say("PUBLISHED", "tune", res["pubsub"]["publish"]["item"]["id"])
    bob2 = PEPClient("bob2", args.bob_jid + "/again", args.bob_password, args.cafile, interests=bob_interests)
    await bob2.login(args.host, args.port)
    el = await notified(bob2, pub, "http://jabber.org/protocol/tune", "last-tune")
    if el is not None:
        say("LAST_TUNE", json.dumps({
            "artist": el.findtext("{http://jabber.org/protocol/tune}artist"),
            "title": el.findtext("{http://jabber.org/protocol/tune}title"),
        }))
    el = await notified(bob2, pub, "http://jabber.org/protocol/nick", "last-nick")
    if el is not None:
        say("LAST_NICK", el.text or "")

    await asyncio.gather(alice.logout(), bob2.logout(), carol.logout())
    say("OK")


def main():
    p = common.parser(__doc__, logins=("alice-", "bob-", "carol-"), timeout=60.0)
    p.add_argument("--avatar", required=True, help="a PNG file")
    p.add_argument("--nick", required=True)
    p.add_argument("--artist", required=True)
    p.add_argument("--title", required=True)
    p.add_argument("--omemo", required=True, help="the bundle, JSON")
    args = p.parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
