#!/usr/bin/python3
"""Sync an account's message archive with nbxmpp the way Gajim does.

Gajim's library, nbxmpp (Debian's python3-nbxmpp 4.2.2), on a GLib main
loop, logged in as nbxmpp_pep.py does (STARTTLS to --host:--port, only the
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

import argparse
import json
import logging
import sys
import traceback
from datetime import datetime, timedelta, timezone

from gi.repository import Gio, GLib

from nbxmpp.client import Client
from nbxmpp.const import ConnectionProtocol, ConnectionType
from nbxmpp.errors import BaseError, StanzaError
from nbxmpp.namespaces import Namespace
from nbxmpp.protocol import JID, Presence
from nbxmpp.structs import StanzaHandler
from nbxmpp.util import generate_id

TASK_TIMEOUT = 10  # seconds, for each request
WAIT = 15  # seconds for messages the test sends


def say(label, *rest):
    """Print one result line for the Go test, at once."""
    print(label, *rest, flush=True)


def error_json(error):
    return {
        "class": type(error).__name__,
        "condition": getattr(error, "condition", None) if isinstance(error, StanzaError) else None,
        "text": str(error),
    }


class Run:
    """The steps, as a generator: each yields a function that starts
    something and is given resume, to call with the outcome."""

    def __init__(self, args, loop):
        self.args = args
        self.loop = loop
        self.status = 1
        self.client = None
        self.steps = None
        self.finished = False
        self.done = False
        # Gajim's state: the query running (its queryid) and what came in.
        self.query_id = None
        self.results = []
        self.live = []
        self.waiter = None  # (bodies, resume) while waiting for messages
        self.on_connected = None
        self.callback = None  # the task callback pending

    # The connection.

    def new_client(self, resource):
        a = self.args
        c = Client()
        jid = JID.from_string(a.jid)
        c.set_username(jid.localpart)
        c.set_domain(jid.domain)
        c.set_resource(resource)
        c.set_password(a.password)
        c.set_custom_host("%s:%d" % (a.host, a.port), ConnectionProtocol.TCP, ConnectionType.START_TLS)
        c.set_accepted_certificates([Gio.TlsCertificate.new_from_file(a.cafile)])
        c.subscribe("connected", self._on_connected)
        c.subscribe("connection-failed", self._on_failed)
        c.subscribe("disconnected", self._on_disconnected)
        if a.debug:
            c.subscribe("stanza-sent", lambda _c, _s, data: print("SENT:", data, file=sys.stderr))
            c.subscribe("stanza-received", lambda _c, _s, data: print("RECV:", data, file=sys.stderr))
        # After nbxmpp's own handlers (delay 15, message 5 and 10), where
        # Gajim's MAM module sits (priority 51).
        c.register_handler(StanzaHandler(name="message", callback=self._on_message, priority=51))
        self.client = c
        return c

    def start(self):
        self.new_client("gajim-mam")
        self.on_connected = self._first_connected
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
        if client is not self.client:
            return
        if self.done:
            self.stop(0)
            return
        if self.on_disconnected is not None:
            cb, self.on_disconnected = self.on_disconnected, None
            cb()
            return
        print("FAIL disconnected: %s" % (client.get_error(),), file=sys.stderr, flush=True)
        self.stop(1)

    on_disconnected = None

    def _on_connected(self, client, _signal):
        mech = getattr(getattr(client, "_sasl", None), "_mechanism", None)
        say("LOGIN", json.dumps({"jid": str(client.get_bound_jid()),
                                 "mechanism": mech.name if mech is not None else None}))
        client.send_stanza(Presence())
        cb, self.on_connected = self.on_connected, None
        cb()

    def _first_connected(self):
        self.steps = self._steps()
        self._advance(None)

    # Driving the steps.

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
        call(self._resume)

    def _resume(self, value):
        GLib.idle_add(lambda: self._advance(value) and False)

    def task(self, start):
        """A waitable for an nbxmpp task: start(callback=, timeout=)."""
        def call(resume):
            def on_done(task):
                self.callback = None
                try:
                    result = task.finish()
                except BaseError as e:
                    result = e
                except Exception as e:  # noqa: BLE001 - nbxmpp raises others on bad replies
                    traceback.print_exc()
                    result = e
                resume(result)
            # The callback goes in with the call: nbxmpp refuses callbacks
            # on a finished task. nbxmpp holds it by a weak reference: the
            # run holds it until it is called.
            self.callback = on_done
            start(callback=on_done, timeout=TASK_TIMEOUT)
        return call

    def _run(self, label, start):
        """Run an nbxmpp task; its result, or None after printing ERROR."""
        result = yield self.task(start)
        if isinstance(result, Exception):
            say("ERROR", label, json.dumps(error_json(result)))
            return None
        return result

    def wait_bodies(self, bodies):
        """A waitable: until messages with these bodies came in live."""
        def call(resume):
            def check():
                got = {m["body"] for m in self.live}
                if all(b in got for b in bodies):
                    self.waiter = None
                    resume(True)
                    return True
                return False
            if check():
                return
            self.waiter = check

            def timeout():
                if self.waiter is check:
                    self.waiter = None
                    missing = sorted(set(bodies) - {m["body"] for m in self.live})
                    resume(RuntimeError("did not receive %r" % missing))
                return False
            GLib.timeout_add_seconds(WAIT, timeout)
        return call

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
                self.new_client("gajim-mam")
                self.on_connected = lambda: resume(True)
                self.client.connect()
            self.on_disconnected = gone
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
        if self.waiter is not None:
            self.waiter()

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
            result = yield from self._run(label, lambda **kw: mam.make_query(
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
        p = yield from self._run(label, lambda **kw: mam.request_preferences(**kw))
        if p is not None:
            say("PREFS", label, json.dumps({"default": p.default, "always": sorted(str(j) for j in p.always),
                                            "never": sorted(str(j) for j in p.never)}))

    def set_prefs(self, label, default, always, never):
        mam = self.client.get_module("MAM")
        r = yield self.task(lambda **kw: mam.set_preferences(default, always, never, **kw))
        if isinstance(r, Exception):
            say("ERROR", label, json.dumps(error_json(r)))
        else:
            say("DONE", label)

    def _steps(self):
        a = self.args
        own = self.client.get_bound_jid().new_as_bare()
        disco = self.client.get_module("Discovery")
        info = yield from self._run("disco", lambda **kw: disco.disco_info(own, **kw))
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
            say("ERROR", "live", json.dumps(error_json(got)))
        else:
            for m in self.live:
                if m["body"] == a.live:
                    last_mam_id = next((i for by, i in m["stanza_ids"] if by == own.bare), None)

        # Offline for a while; the next sign-in syncs after last_mam_id.
        r = yield self.reconnect()
        if isinstance(r, Exception):
            say("ERROR", "reconnect", json.dumps(error_json(r)))
            return
        got = yield self.wait_bodies(json.loads(a.offline))
        if isinstance(got, Exception):
            say("ERROR", "offline", json.dumps(error_json(got)))
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
                say("ERROR_EXPECTED", label, json.dumps(error_json(r)))
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
            say("ERROR", "prefs-live", json.dumps(error_json(got)))
        if sync2_last is not None:
            yield from self.query("sync3", after=sync2_last)
        yield from self.set_prefs("restore-prefs", "always", [], [])
        yield from self.prefs("prefs-restored")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--live", required=True, help="the body of the live message")
    p.add_argument("--offline", required=True, help="JSON list of the bodies kept offline")
    p.add_argument("--always", required=True, help="the JID always archived")
    p.add_argument("--never", required=True, help="the JID never archived")
    p.add_argument("--prefs-bodies", required=True, help="JSON list of the bodies sent after set_preferences")
    p.add_argument("--timeout", type=float, default=60.0)
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
