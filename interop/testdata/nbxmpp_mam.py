#!/usr/bin/python3
"""Sync an account's message archive with nbxmpp the way Gajim does.

Gajim's library, nbxmpp (Debian's python3-nbxmpp 4.2.2), on a GLib main
loop, logged in as nbxmpp_common.py does (STARTTLS to --host:--port, only the
certificate in --cafile accepted, nbxmpp's SASL mechanisms). It reads the
archive through nbxmpp's MAM module (nbxmpp/modules/mam.py: make_query,
request_preferences, set_preferences) as Gajim 1.7.3 drives it
(gajim/common/modules/mam.py), and takes in the archived messages as Gajim's
handler does: a message handler after nbxmpp's own, which reads the
properties nbxmpp parsed (mam.id, mam.query_id, mam.archive, mam.timestamp,
body, from, to, the stanza-ids).

Steps (the test sends the other messages from its own clients):

  * Discovery.disco_info of the account's bare JID: urn:xmpp:mam:2 among
    the features is what turns MAM on in Gajim (pass_disco).
  * "sync1", Gajim's first sign-in (request_archive_on_signin with no
    last_mam_id): make_query(own bare JID, a fresh queryid,
    start=now - 7 days), nbxmpp's max of 70; while the <fin/> is not
    complete, again with after=<the page's last id>, start as before.
  * READY live: the test sends one message, --live; the stanza-id by the
    account's bare JID it carries is what Gajim keeps as last_mam_id.
  * The client disconnects; OFFLINE is printed and a line read from stdin
    (the test sends messages meanwhile); a new client logs in and sends
    initial presence, gets the messages kept offline (--offline, JSON list
    of bodies), and "sync2" is Gajim's next sign-in: after=last_mam_id, no
    start, until complete; "sync-again" the same after sync2's last id.
  * "unknown-id": after= an id the archive never had (Gajim then forgets
    its last_mam_id and starts over from a date); "unknown-uuid" the same
    with a UUID, the id of another server's archive.
  * "interval", Gajim's request_archive_interval (the history browser):
    start=now - 1 day, end=now + 1 minute, paged with after= until
    complete; "with" the same filtered with_=--with.
  * Preferences: request_preferences ("prefs-initial"); set_preferences
    ("roster", always [--always], never [--never]) and read back
    ("prefs-set"); READY prefs: the test sends --prefs-bodies (JSON list:
    from the never JID first, the always JID second), awaited live; "sync3"
    after sync2's last id; set_preferences("always", [], []) and read
    back ("prefs-restored").

Lines on stdout (JSON after the label):

    LOGIN {"jid", "mechanism"}
    DISCO {"mam2": bool, "features": [...]}
    PAGE <label> {"n", "first", "last", "complete", "count", "jid"}
    RESULT <label> {"id", "queryid", "queryid_ok", "archive", "archive_ok",
                    "from", "to", "jid", "kind", "body", "stamp_parsed",
                    "stanza_ids"}
        queryid_ok: the queryid is the one of the query running (Gajim's
        _is_valid_request); archive_ok: the archive is the account's bare
        JID (_from_valid_archive); kind "sent" or "received" as Gajim
        decides it (from bare-matches the account); stamp_parsed: nbxmpp's
        mam.timestamp, seconds since the epoch
    SYNCED <label> <last id or ->
    LIVE {"body", "from", "stanza_ids": [[by, id], ...], "server_delay"}
    READY <what>
    OFFLINE
    ERROR <label> {"class", "condition", "text"}
    PREFS <label> {"default", "always", "never"}
    DONE <label>
    OK

A step that fails prints ERROR and the next steps run. Exits 0 when every
step ran, 1 on any other error, 2 on the overall timeout.
"""

import json
import os
import sys
from datetime import datetime, timedelta, timezone

# nbxmpp_common.py sits next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nbxmpp.namespaces import Namespace  # noqa: E402
from nbxmpp.structs import StanzaHandler  # noqa: E402
from nbxmpp.util import generate_id  # noqa: E402

import nbxmpp_common as common  # noqa: E402
from nbxmpp_common import say  # noqa: E402

WAIT = 15  # seconds for messages the test sends


class Run(common.AccountRun):
    """The steps, and what Gajim's handler saw."""

    def __init__(self, args, loop):
        super().__init__(args, loop)
        # Gajim's state: the query running (its queryid) and what came in.
        self.query_id = None
        self.results = []
        self.live = []

    def new_session(self, resource):
        s = super().new_session(resource)
        # After nbxmpp's own handlers (delay 15, message 5 and 10), where
        # Gajim's MAM module sits (priority 51).
        s.client.register_handler(StanzaHandler(name="message", callback=self._on_message, priority=51))
        return s

    def wait_bodies(self, bodies):
        """A waitable: until messages with these bodies came in live."""
        def missing():
            return sorted(set(bodies) - {m["body"] for m in self.live})
        return self.wait(lambda: not missing(), WAIT,
                         lambda: RuntimeError("did not receive %r" % missing()))

    def reconnect(self):
        """A waitable: disconnect, print OFFLINE, wait for a line on
        stdin (the test sends meanwhile), log in again."""
        def call(resume):
            def gone():
                say("OFFLINE")
                line = sys.stdin.readline()  # nothing to serve while offline
                if not line:
                    resume(RuntimeError("stdin closed"))
                    return
                self.login("gajim-mam")(resume)
            self.session.on_disconnected = gone
            self.client.disconnect()
        return call

    # Gajim's handler.

    def _on_message(self, _client, _stanza, properties):
        own = self.client.get_bound_jid()
        if properties.is_mam_message:
            mam = properties.mam
            archive_ok = mam.archive is not None and mam.archive.bare_match(own.bare)
            sent = properties.from_ is not None and own.bare_match(properties.from_)
            self.results.append({
                "id": mam.id, "queryid": mam.query_id,
                "queryid_ok": mam.query_id == self.query_id,
                "archive": str(mam.archive), "archive_ok": archive_ok,
                "from": str(properties.from_), "to": str(properties.to),
                "jid": str(properties.jid), "kind": "sent" if sent else "received",
                "body": properties.body, "stamp_parsed": mam.timestamp,
                "stanza_ids": [[s.by, s.id] for s in properties.stanza_ids],
            })
            return
        if not properties.body:
            return
        m = {"body": properties.body, "from": str(properties.from_),
             "stanza_ids": [[s.by, s.id] for s in properties.stanza_ids],
             "server_delay": properties.has_server_delay}
        say("LIVE", json.dumps(m, ensure_ascii=False))
        self.live.append(m)
        self.poke()

    # The queries, as Gajim makes them.

    def query(self, label, after=None, start=None, end=None, with_=None):
        """Gajim's _execute_query: make_query until the <fin/> is
        complete, each page with a fresh queryid and after= the last id
        of the page before. Returns the last page's MAMQueryData, or None
        after ERROR."""
        mam = self.client.get_module("MAM")
        own = self.client.get_bound_jid().new_as_bare()
        last = None
        for _ in range(50):
            self.query_id = generate_id()
            self.results = []
            qid = self.query_id
            result = yield from self.run(label, lambda **kw: mam.make_query(
                own, qid, start=start, end=end, with_=with_, after=after, **kw))
            self.query_id = None
            if result is None:
                return None
            for r in self.results:
                say("RESULT", label, json.dumps(r, ensure_ascii=False))
            say("PAGE", label, json.dumps({
                "n": len(self.results), "first": result.rsm.first, "last": result.rsm.last,
                "complete": result.complete, "count": result.rsm.count, "jid": str(result.jid)}))
            if result.rsm.last is not None:
                last = result.rsm.last
            if result.complete:
                say("SYNCED", label, last or "-")
                return result
            after = result.rsm.last
        say("ERROR", label, json.dumps({"class": "Loop", "condition": None,
                                        "text": "not complete after 50 pages"}))
        return None

    def prefs(self, label):
        mam = self.client.get_module("MAM")
        p = yield from self.run(label, lambda **kw: mam.request_preferences(**kw))
        if p is not None:
            say("PREFS", label, json.dumps({"default": p.default, "always": sorted(str(j) for j in p.always),
                                            "never": sorted(str(j) for j in p.never)}))

    def set_prefs(self, label, default, always, never):
        mam = self.client.get_module("MAM")
        r = yield self.task(lambda **kw: mam.set_preferences(default, always, never, **kw))
        if isinstance(r, Exception):
            self.error(label, r)
        else:
            say("DONE", label)

    def steps(self):
        yield self.login("gajim-mam")
        a = self.args
        own = self.client.get_bound_jid().new_as_bare()
        disco = self.client.get_module("Discovery")
        info = yield from self.run("disco", lambda **kw: disco.disco_info(own, **kw))
        if info is not None:
            features = sorted(f for f in info.features if "mam" in f or "sid" in f)
            say("DISCO", json.dumps({"mam2": Namespace.MAM_2 in info.features, "features": features}))

        # Gajim's first sign-in: the last week.
        week = datetime.now(timezone.utc) - timedelta(days=7)
        yield from self.query("sync1", start=week)

        # A live message: its stanza-id by the account is Gajim's last_mam_id.
        say("READY", "live")
        got = yield self.wait_bodies([a.live])
        last_mam_id = None
        if isinstance(got, Exception):
            self.error("live", got)
        else:
            for m in self.live:
                if m["body"] == a.live:
                    last_mam_id = next((i for by, i in m["stanza_ids"] if by == own.bare), None)

        # Offline for a while; the next sign-in syncs after last_mam_id.
        r = yield self.reconnect()
        if isinstance(r, Exception):
            self.error("reconnect", r)
            return
        got = yield self.wait_bodies(json.loads(a.offline))
        if isinstance(got, Exception):
            self.error("offline", got)
        if last_mam_id is None:
            say("ERROR", "sync2", json.dumps({"class": "NoStanzaID", "condition": None,
                                              "text": "the live message had no stanza-id by %s" % own}))
            return
        sync2 = yield from self.query("sync2", after=last_mam_id)
        sync2_last = sync2.rsm.last if sync2 is not None else None
        if sync2_last is not None:
            yield from self.query("sync-again", after=sync2_last)

        # An id the archive does not have: Gajim resets on item-not-found.
        for label, bad in (("unknown-id", "0000000000000001"), ("unknown-uuid", generate_id())):
            mam = self.client.get_module("MAM")
            r = yield self.task(lambda **kw: mam.make_query(own, generate_id(), after=bad, **kw))
            if isinstance(r, Exception):
                self.error(label, r, "ERROR_EXPECTED")
            else:
                say("PAGE", label, json.dumps({"n": -1, "first": r.rsm.first, "last": r.rsm.last,
                                               "complete": r.complete, "count": r.rsm.count, "jid": str(r.jid)}))

        # The history browser: an interval, and with one contact.
        now = datetime.now(timezone.utc)
        yield from self.query("interval", start=now - timedelta(days=1), end=now + timedelta(minutes=1))

        # Archiving preferences, and what they do.
        yield from self.prefs("prefs-initial")
        yield from self.set_prefs("set-prefs", "roster", [a.always], [a.never])
        yield from self.prefs("prefs-set")
        say("READY", "prefs")
        got = yield self.wait_bodies(json.loads(a.prefs_bodies))
        if isinstance(got, Exception):
            self.error("prefs-live", got)
        if sync2_last is not None:
            yield from self.query("sync3", after=sync2_last)
        yield from self.set_prefs("restore-prefs", "always", [], [])
        yield from self.prefs("prefs-restored")


def main():
    p = common.parser(__doc__, timeout=60.0)
    p.add_argument("--live", required=True, help="the body of the live message")
    p.add_argument("--offline", required=True, help="JSON list of the bodies kept offline")
    p.add_argument("--always", required=True, help="the JID always archived")
    p.add_argument("--never", required=True, help="the JID never archived")
    p.add_argument("--prefs-bodies", required=True, help="JSON list of the bodies sent after set_preferences")
    common.main(Run, p.parse_args())


if __name__ == "__main__":
    main()
