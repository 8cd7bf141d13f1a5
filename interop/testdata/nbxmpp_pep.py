#!/usr/bin/python3
"""Publish an avatar and bookmarks with nbxmpp, as Gajim does, and read them back.

Gajim's library, nbxmpp (Debian's python3-nbxmpp 4.2.2), on a GLib main
loop, logged in as nbxmpp_common.py does (STARTTLS to --host:--port, only the
certificate in --cafile accepted, nbxmpp's SASL mechanisms). Then, through
the modules Gajim calls:

  * Discovery.disco_info of the account's bare JID, as Gajim asks it at
    login: its identities and features, and the bookmark storage Gajim
    1.7.3 picks from them (NativeBookmarks needs
    urn:xmpp:bookmarks:1#compat-pep and pubsub#config-node-max, PEPBookmarks
    urn:xmpp:bookmarks-conversion:0, PrivateBookmarks otherwise);
  * UserAvatar.set_avatar (XEP-0084) with the PNG of --avatar, not public:
    the data and the metadata published with publish-options
    pubsub#access_model=presence; request_avatar_metadata and
    request_avatar_data of the account's own JID read them back (nbxmpp
    checks the data's SHA-1 against the item id);
  * set_avatar again, public: the publish-options (access_model open) now
    differ from the nodes' configuration, the server refuses with
    precondition-not-met, and nbxmpp (force_node_options) reads the node
    configuration form, changes the access model, submits it and publishes
    again; PubSub.get_access_model then reads both nodes' model;
  * UserAvatar.set_access_model(public=False), Gajim's "avatar visible to
    contacts only": configuration form read and submitted for both nodes;
  * NativeBookmarks (XEP-0402): store_bookmarks with the bookmarks of
    --bookmarks (JSON [{"jid", "name", "nick", "autojoin", "password"}]),
    one item per room with nbxmpp's options (whitelist, max_items max, …),
    sent without waiting for the results as nbxmpp does; request_bookmarks;
    retract_bookmark of the last one; request_bookmarks again.

Lines on stdout (JSON after the label):

    LOGIN {"jid", "mechanism"}
    ACCOUNT_DISCO {"identities": ["category/type", ...], "features", "gajim_bookmarks"}
    DONE <label>                       a step that returns nothing to check
    AVATAR_META {"default", "infos": [{"id", "type", "bytes", "width", "height"}]}
    AVATAR_DATA {"sha", "bytes", "same"}     same: the bytes are the PNG's
    ACCESS <label> <access model>
    BOOKMARKS <label> [{"jid", "name", "nick", "autojoin", "password"}, ...]
    ERROR <label> {"class", "condition", "app_condition", "text"}
    OK

A step that fails is reported and the next steps run. Exits 0 when every
step ran, 1 on any other error, 2 on the overall timeout.
"""

import json
import os
import sys

# nbxmpp_common.py sits next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nbxmpp.modules.user_avatar import Avatar  # noqa: E402
from nbxmpp.namespaces import Namespace  # noqa: E402
from nbxmpp.protocol import JID  # noqa: E402
from nbxmpp.structs import BookmarkData  # noqa: E402

import nbxmpp_common as common  # noqa: E402
from nbxmpp_common import say  # noqa: E402

NS_PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"
NS_CONFIG_NODE_MAX = "http://jabber.org/protocol/pubsub#config-node-max"
NS_BOOKMARKS_COMPAT_PEP = "urn:xmpp:bookmarks:1#compat-pep"
NS_BOOKMARK_CONVERSION = "urn:xmpp:bookmarks-conversion:0"


def bookmark_json(b):
    return {"jid": str(b.jid), "name": b.name, "nick": b.nick, "autojoin": b.autojoin, "password": b.password}


class Run(common.AccountRun):
    """The steps."""

    def error_json(self, error):
        return common.error_json(error, app_condition=True)

    def steps(self):
        yield self.login("nbxmpp-pep")
        a = self.args
        own = self.client.get_bound_jid().new_as_bare()
        avatars = self.client.get_module("UserAvatar")
        pubsub = self.client.get_module("PubSub")
        bookmarks = self.client.get_module("NativeBookmarks")
        disco = self.client.get_module("Discovery")
        with open(a.avatar, "rb") as f:
            png = f.read()

        # What Gajim asks of the account's bare JID at login
        # (gajim/common/modules/discovery.py): a pubsub/pep identity turns
        # PEP on, pubsub#publish-options lets it publish with options, and
        # the features below choose how it stores bookmarks
        # (gajim/common/modules/bookmarks.py, Gajim 1.7.3).
        info = yield from self.run("account-disco", lambda **kw: disco.disco_info(own, **kw))
        if info is not None:
            features = set(info.features)
            if NS_PUBLISH_OPTIONS not in features:
                module = "PrivateBookmarks"
            elif NS_BOOKMARKS_COMPAT_PEP in features and NS_CONFIG_NODE_MAX in features:
                module = "NativeBookmarks"
            elif NS_BOOKMARK_CONVERSION in features:
                module = "PEPBookmarks"
            else:
                module = "PrivateBookmarks"
            say("ACCOUNT_DISCO", json.dumps({
                "identities": sorted("%s/%s" % (i.category, i.type) for i in info.identities),
                "features": sorted(features),
                "gajim_bookmarks": module,
            }))

        avatar = Avatar()
        avatar.add_image_source(png, "image/png", 16, 16)
        if (yield from self.run("set-avatar", lambda **kw: avatars.set_avatar(avatar, public=False, **kw))) is not None:
            say("DONE", "set-avatar")
        meta = yield from self.run("avatar-metadata", lambda **kw: avatars.request_avatar_metadata(jid=own, **kw))
        if meta is not None:
            say("AVATAR_META", json.dumps({"default": meta.default, "infos": [
                {"id": i.id, "type": i.type, "bytes": i.bytes, "width": i.width, "height": i.height}
                for i in meta.infos]}))
            data = yield from self.run("avatar-data", lambda **kw: avatars.request_avatar_data(meta.default, jid=own, **kw))
            if data is not None:
                say("AVATAR_DATA", json.dumps({"sha": data.sha, "bytes": len(data.data), "same": data.data == png}))

        if (yield from self.run("set-avatar-public", lambda **kw: avatars.set_avatar(avatar, public=True, **kw))) is not None:
            say("DONE", "set-avatar-public")
        for node in (Namespace.AVATAR_DATA, Namespace.AVATAR_METADATA):
            model = yield from self.run("access-public " + node, lambda **kw: pubsub.get_access_model(node, **kw))
            if model is not None:
                say("ACCESS", "public", node, model)
        if (yield from self.run("set-access-model", lambda **kw: avatars.set_access_model(False, **kw))) is not None:
            say("DONE", "set-access-model")
        for node in (Namespace.AVATAR_DATA, Namespace.AVATAR_METADATA):
            model = yield from self.run("access-contacts " + node, lambda **kw: pubsub.get_access_model(node, **kw))
            if model is not None:
                say("ACCESS", "contacts", node, model)

        marks = [BookmarkData(jid=JID.from_string(b["jid"]), name=b.get("name"), nick=b.get("nick"),
                              autojoin=bool(b.get("autojoin")), password=b.get("password"))
                 for b in json.loads(a.bookmarks)]
        if (yield from self.run("store-bookmarks", lambda **kw: bookmarks.store_bookmarks(marks, **kw))) is not None:
            say("DONE", "store-bookmarks")
        got = yield from self.run("bookmarks", lambda **kw: bookmarks.request_bookmarks(**kw))
        if got is not None:
            say("BOOKMARKS", "stored", json.dumps([bookmark_json(b) for b in got]))
        if (yield from self.run("retract-bookmark", lambda **kw: bookmarks.retract_bookmark(marks[-1].jid, **kw))) is not None:
            say("DONE", "retract-bookmark")
        got = yield from self.run("bookmarks-after-retract", lambda **kw: bookmarks.request_bookmarks(**kw))
        if got is not None:
            say("BOOKMARKS", "retracted", json.dumps([bookmark_json(b) for b in got]))


def main():
    p = common.parser(__doc__)
    p.add_argument("--avatar", required=True, help="a PNG file")
    p.add_argument("--bookmarks", required=True, help="JSON list of bookmarks")
    common.main(Run, p.parse_args())


if __name__ == "__main__":
    main()
