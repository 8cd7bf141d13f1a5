#!/usr/bin/python3
"""slixmpp's XEP-0223 plugin (xep_0223) keeps alice's private data in PEP.

Run by interop/privatepep_test.go with Debian's /usr/bin/python3 and
python3-slixmpp 1.8.3. alice and bob are contacts with a subscription both
ways (the test sets up their rosters); carol is neither's contact. Every
client logs in as in common.py (STARTTLS, the server's certificate as the
only CA, SCRAM) and sends presence.

The private data is an app's own element, <notes xmlns='NS_NOTES'
version='…'><text>…</text></notes>, a stanza plugin of pubsub <item/> as
an app registers its payload, so that slixmpp parses what it reads back.

  1. bob logs in with XEP-0115 caps that ask for notifications of NS_NOTES
     (xep_0163's add_interest, as a curious client might) and of XEP-0172
     nicks (xep_0172 asks for them by itself), and waits until the server
     asked what his caps stand for.
  2. alice (resource phone) publishes a nick: bob's notification of it
     shows the server knows what he asked for.
  3. alice stores the notes with xep_0223's store(): node NS_NOTES (the
     payload's namespace, the plugin's default), item id current (xep_0163's
     default), publish-options with the plugin's profile
     (pubsub#persist_items 1, pubsub#access_model whitelist); she reads
     the node's configuration back (xep_0060 get_node_config). She
     publishes a second nick; bob gets its notification, and none of the
     notes before it.
  4. alice logs out and logs in again (resource laptop), and reads the
     notes back with xep_0223's retrieve().
  5. bob and carol each ask alice's bare JID for the node's items
     (xep_0060 get_items), all of them and by the item's id: each request
     must be refused.

Lines on stdout the test reads, besides common.Client's:

    CAPS_QUERIED <node#ver the server asked bob for>
    NICK_NOTIFIED <nick>                 bob's notification of alice's nick
    STORED <item id the server returned>
    CONFIG {"access_model": …, "persist_items": …}
    LEAKED <what bob was notified of>    a notification of the notes
    RETRIEVED {"id", "version", "text"}  what alice's new session read
    DENIED <role> <all|id> <condition> <pubsub#errors condition or -> <type>
    READ <role> <all|id> <what came back> (a request that was answered)
    OK

Exits 0 when every step ran (what came back is checked by the Go test), 1
on any error and 2 on the overall timeout.
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
from slixmpp.plugins.xep_0060.stanza.pubsub import Item  # noqa: E402
from slixmpp.xmlstream import ElementBase, register_stanza_plugin  # noqa: E402
from slixmpp.xmlstream.handler import Callback  # noqa: E402
from slixmpp.xmlstream.matcher import StanzaPath  # noqa: E402

NS_NOTES = "urn:example:adhocd:notes:0"
NS_NICK = "http://jabber.org/protocol/nick"
NS_PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors"
STEP = 10  # seconds any single answer may take


class Notes(ElementBase):
    """An app's private payload: a note for its user alone."""

    name = "notes"
    namespace = NS_NOTES
    plugin_attrib = "private_notes"
    interfaces = {"version", "text"}
    sub_interfaces = {"text"}


register_stanza_plugin(Item, Notes)


class Bob(common.Client):
    """bob: caps asking for nicks and for alice's notes; records what PEP
    notifications he gets, in order."""

    def __init__(self, args):
        super().__init__("bob", args.bob_jid, args.bob_password, args.cafile,
                         plugins=("xep_0030", "xep_0115", "xep_0163", "xep_0060", "xep_0172"),
                         roster=True)
        loop = asyncio.get_running_loop()
        self.caps_queried = loop.create_future()
        self.events = []  # (node, payload element)
        self.changed = asyncio.Event()
        self.add_event_handler("session_bind", self._on_bind)
        self.add_event_handler("pubsub_publish", self._on_publish)
        # Beside xep_0030's own handler, which answers it.
        self.register_handler(Callback("caps query", StanzaPath("iq@type=get/disco_info"), self._on_disco_get))

    def _on_bind(self, _jid):
        # After the plugins' own session_bind: node+"+notify" (XEP-0163 §4.2).
        self["xep_0163"].add_interest(NS_NOTES)

    def _on_disco_get(self, iq):
        node = iq["disco_info"]["node"] or ""
        if "#" in node and not self.caps_queried.done():
            self.caps_queried.set_result(node)

    def _on_publish(self, msg):
        items = msg["pubsub_event"]["items"]
        # Through ElementTree, not the stanza's own iteration, which
        # xep_0060 is in the middle of.
        for it in items.xml.findall("{http://jabber.org/protocol/pubsub#event}item"):
            if len(it) > 0:
                self.events.append((items["node"], it[0]))
        self.changed.set()

    async def nick(self, nick):
        """Wait for the notification of nick; report any of the notes."""
        await common.until(self.changed,
                           lambda: any(n == NS_NICK and (p.text or "") == nick for n, p in self.events),
                           STEP, "bob was not notified of the nick %r" % nick)
        say("NICK_NOTIFIED", nick)
        for node, payload in self.events:
            if node == NS_NOTES:
                say("LEAKED", node, payload.findtext("{%s}text" % NS_NOTES))


def error_conditions(e):
    """The defined condition, the pubsub#errors condition and the type."""
    err = e.iq.xml.find("{jabber:client}error")
    app = "-"
    if err is not None:
        for el in err:
            if el.tag.startswith("{%s}" % NS_PUBSUB_ERRORS):
                app = el.tag.split("}", 1)[1]
    return e.iq["error"]["condition"], app, e.iq["error"]["type"]


def items_of(iq):
    return [it for it in iq["pubsub"]["items"]["substanzas"] if isinstance(it, Item)]


async def run(args):
    jid = args.alice_jid
    alice = common.Client("alice", jid + "/phone", args.alice_password, args.cafile,
                          plugins=("xep_0030", "xep_0004", "xep_0060", "xep_0163", "xep_0223", "xep_0172"),
                          roster=True)
    bob = Bob(args)
    carol = common.Client("carol", args.carol_jid, args.carol_password, args.cafile,
                          plugins=("xep_0030", "xep_0060"), roster=True)

    # 1. bob, with his caps known to the server.
    await bob.login(args.host, args.port)
    say("CAPS_QUERIED", await asyncio.wait_for(asyncio.shield(bob.caps_queried), STEP))

    # 2. A nick bob may see.
    await alice.login(args.host, args.port)
    await alice["xep_0172"].publish_nick(args.nick + " 1", timeout=STEP)
    await bob.nick(args.nick + " 1")

    # 3. The notes, stored with the plugin's profile.
    notes = Notes()
    notes["version"] = args.version
    notes["text"] = args.text
    res = await alice["xep_0223"].store(notes, timeout=STEP)
    item_id = res["pubsub"]["publish"]["item"]["id"]
    say("STORED", item_id)
    conf = await alice["xep_0060"].get_node_config(None, NS_NOTES, timeout=STEP)
    values = conf["pubsub_owner"]["configure"]["form"].get_values()
    say("CONFIG", json.dumps({"access_model": values.get("pubsub#access_model"),
                              "persist_items": values.get("pubsub#persist_items")}))
    await alice["xep_0172"].publish_nick(args.nick + " 2", timeout=STEP)
    await bob.nick(args.nick + " 2")
    await alice.logout()

    # 4. Read back in a new session.
    alice2 = common.Client("alice2", jid + "/laptop", args.alice_password, args.cafile,
                           plugins=("xep_0030", "xep_0004", "xep_0060", "xep_0163", "xep_0223"),
                           roster=True)
    await alice2.login(args.host, args.port)
    got = items_of(await alice2["xep_0223"].retrieve(NS_NOTES, timeout=STEP))
    say("RETRIEVED", json.dumps([{"id": it["id"], "version": it["private_notes"]["version"],
                                  "text": it["private_notes"]["text"]} for it in got], ensure_ascii=False))

    # 5. Nobody else reads them, contact or not.
    await carol.login(args.host, args.port)
    for who in (bob, carol):
        for how, ids in (("all", None), ("id", [item_id])):
            try:
                res = await who["xep_0060"].get_items(jid, NS_NOTES, item_ids=ids, timeout=STEP)
                say("READ", who.role, how, json.dumps([it["private_notes"]["text"] for it in items_of(res)],
                                                      ensure_ascii=False))
            except IqError as e:
                say("DENIED", who.role, how, *error_conditions(e))

    await asyncio.gather(alice2.logout(), bob.logout(), carol.logout())
    say("OK")


def main():
    p = common.parser(__doc__, logins=("alice-", "bob-", "carol-"), jid_help="a bare JID")
    p.add_argument("--nick", required=True, help="alice's nicks start with it")
    p.add_argument("--version", required=True, help="the notes' version attribute")
    p.add_argument("--text", required=True, help="the notes' text")
    args = p.parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
