#!/usr/bin/python3
"""Publish an avatar and bookmarks with nbxmpp, as Gajim does, and read them back.

Gajim's library, nbxmpp (Debian's python3-nbxmpp 4.2.2), on a GLib main
loop, logged in as nbxmpp_adhoc.py does (STARTTLS to --host:--port, only the
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

import argparse
import json
import logging
import sys
import traceback

from gi.repository import Gio, GLib

from nbxmpp.client import Client
from nbxmpp.const import ConnectionProtocol, ConnectionType
from nbxmpp.errors import BaseError, StanzaError
from nbxmpp.modules.user_avatar import Avatar
from nbxmpp.namespaces import Namespace
from nbxmpp.protocol import JID, Presence
from nbxmpp.structs import BookmarkData

TASK_TIMEOUT = 10  # seconds, for each request
NS_PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"
NS_CONFIG_NODE_MAX = "http://jabber.org/protocol/pubsub#config-node-max"
NS_BOOKMARKS_COMPAT_PEP = "urn:xmpp:bookmarks:1#compat-pep"
NS_BOOKMARK_CONVERSION = "urn:xmpp:bookmarks-conversion:0"


def say(label, *rest):
    """Print one result line for the Go test, at once."""
    print(label, *rest, flush=True)


def error_json(error):
    return {
        "class": type(error).__name__,
        "condition": getattr(error, "condition", None) if isinstance(error, StanzaError) else None,
        "app_condition": getattr(error, "app_condition", None),
        "text": str(error),
    }


def bookmark_json(b):
    return {"jid": str(b.jid), "name": b.name, "nick": b.nick, "autojoin": b.autojoin, "password": b.password}


class Run:
    """The steps, as a generator driven by the tasks' callbacks."""

    def __init__(self, args, loop):
        self.args = args
        self.loop = loop
        self.status = 1
        self.client = Client()
        jid = JID.from_string(args.jid)
        self.client.set_username(jid.localpart)
        self.client.set_domain(jid.domain)
        self.client.set_resource("nbxmpp-pep")
        self.client.set_password(args.password)
        self.client.set_custom_host("%s:%d" % (args.host, args.port),
                                    ConnectionProtocol.TCP, ConnectionType.START_TLS)
        self.client.set_accepted_certificates([Gio.TlsCertificate.new_from_file(args.cafile)])
        self.client.subscribe("connected", self._on_connected)
        self.client.subscribe("connection-failed", self._on_failed)
        self.client.subscribe("disconnected", self._on_disconnected)
        if args.debug:
            self.client.subscribe("stanza-sent", lambda _c, _s, data: print("SENT:", data, file=sys.stderr))
            self.client.subscribe("stanza-received", lambda _c, _s, data: print("RECV:", data, file=sys.stderr))
        self.steps = None
        self.done = False
        self.finished = False

    def start(self):
        self.client.connect()

    def stop(self, status):
        if self.finished:
            return
        self.finished = True
        self.status = status
        self.loop.quit()

    def _on_failed(self, client, _signal):
        print("FAIL connection failed: %s" % (client.get_error(),), file=sys.stderr, flush=True)
        self.stop(1)

    def _on_disconnected(self, client, _signal):
        if self.done:
            self.stop(0)
            return
        print("FAIL disconnected: %s" % (client.get_error(),), file=sys.stderr, flush=True)
        self.stop(1)

    def _on_connected(self, client, _signal):
        mech = getattr(getattr(client, "_sasl", None), "_mechanism", None)
        say("LOGIN", json.dumps({"jid": str(client.get_bound_jid()),
                                 "mechanism": mech.name if mech is not None else None}))
        client.send_stanza(Presence())
        self.steps = self._steps()
        self._advance(None)

    def _advance(self, value):
        try:
            call = self.steps.send(value)
        except StopIteration:
            say("OK")
            self.done = True
            self.client.disconnect()
            GLib.timeout_add_seconds(5, lambda: self.stop(0) and False)
            return
        except Exception as e:  # noqa: BLE001 - any failure ends the run
            traceback.print_exc()
            print("FAIL %s: %s" % (type(e).__name__, e), file=sys.stderr, flush=True)
            self.stop(1)
            return
        # The callback goes in with the call: a task that needs no reply
        # (store_bookmarks) finishes inside it, and nbxmpp forgets its result
        # and refuses callbacks once it is finished.
        call(callback=self._on_task_done, timeout=TASK_TIMEOUT)

    def _on_task_done(self, task):
        try:
            result = task.finish()
        except BaseError as e:
            result = e
        except Exception as e:  # noqa: BLE001 - nbxmpp raises others on bad replies
            traceback.print_exc()
            result = e
        GLib.idle_add(lambda: self._advance(result) and False)

    def _run(self, label, call):
        """Yield call, which starts a task given its callback and timeout;
        return the task's result, or None after printing ERROR."""
        result = yield call
        if isinstance(result, Exception):
            say("ERROR", label, json.dumps(error_json(result)))
            return None
        return result

    def _steps(self):
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
        info = yield from self._run("account-disco", lambda **kw: disco.disco_info(own, **kw))
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
        if (yield from self._run("set-avatar", lambda **kw: avatars.set_avatar(avatar, public=False, **kw))) is not None:
            say("DONE", "set-avatar")
        meta = yield from self._run("avatar-metadata", lambda **kw: avatars.request_avatar_metadata(jid=own, **kw))
        if meta is not None:
            say("AVATAR_META", json.dumps({"default": meta.default, "infos": [
                {"id": i.id, "type": i.type, "bytes": i.bytes, "width": i.width, "height": i.height}
                for i in meta.infos]}))
            data = yield from self._run("avatar-data", lambda **kw: avatars.request_avatar_data(meta.default, jid=own, **kw))
            if data is not None:
                say("AVATAR_DATA", json.dumps({"sha": data.sha, "bytes": len(data.data), "same": data.data == png}))

        if (yield from self._run("set-avatar-public", lambda **kw: avatars.set_avatar(avatar, public=True, **kw))) is not None:
            say("DONE", "set-avatar-public")
        for node in (Namespace.AVATAR_DATA, Namespace.AVATAR_METADATA):
            model = yield from self._run("access-public " + node, lambda **kw: pubsub.get_access_model(node, **kw))
            if model is not None:
                say("ACCESS", "public", node, model)
        if (yield from self._run("set-access-model", lambda **kw: avatars.set_access_model(False, **kw))) is not None:
            say("DONE", "set-access-model")
        for node in (Namespace.AVATAR_DATA, Namespace.AVATAR_METADATA):
            model = yield from self._run("access-contacts " + node, lambda **kw: pubsub.get_access_model(node, **kw))
            if model is not None:
                say("ACCESS", "contacts", node, model)

        marks = [BookmarkData(jid=JID.from_string(b["jid"]), name=b.get("name"), nick=b.get("nick"),
                              autojoin=bool(b.get("autojoin")), password=b.get("password"))
                 for b in json.loads(a.bookmarks)]
        if (yield from self._run("store-bookmarks", lambda **kw: bookmarks.store_bookmarks(marks, **kw))) is not None:
            say("DONE", "store-bookmarks")
        got = yield from self._run("bookmarks", lambda **kw: bookmarks.request_bookmarks(**kw))
        if got is not None:
            say("BOOKMARKS", "stored", json.dumps([bookmark_json(b) for b in got]))
        if (yield from self._run("retract-bookmark", lambda **kw: bookmarks.retract_bookmark(marks[-1].jid, **kw))) is not None:
            say("DONE", "retract-bookmark")
        got = yield from self._run("bookmarks-after-retract", lambda **kw: bookmarks.request_bookmarks(**kw))
        if got is not None:
            say("BOOKMARKS", "retracted", json.dumps([bookmark_json(b) for b in got]))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--avatar", required=True, help="a PNG file")
    p.add_argument("--bookmarks", required=True, help="JSON list of bookmarks")
    p.add_argument("--timeout", type=float, default=40.0)
    p.add_argument("--debug", action="store_true", help="log nbxmpp and its XML to stderr")
    args = p.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")

    loop = GLib.MainLoop()
    run = Run(args, loop)

    def on_timeout():
        print("FAIL timeout after %.0fs" % args.timeout, file=sys.stderr, flush=True)
        run.stop(2)
        return False

    GLib.timeout_add(int(args.timeout * 1000), on_timeout)
    GLib.idle_add(lambda: run.start() and False)
    loop.run()
    sys.exit(run.status)


if __name__ == "__main__":
    main()
