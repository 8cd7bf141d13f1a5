#!/usr/bin/python3
"""slixmpp's own XEP-0313 plugin (xep_0313) reads adhocd's message archive.

Run by interop/mam_test.go with Debian's /usr/bin/python3 and
python3-slixmpp 1.8.3. Three clients log in as in common.py (STARTTLS with
the server's self-signed certificate, SCRAM): alice (with xep_0359 loaded,
to read the XEP-0359 stanza-id of what she receives), bob and carol.

1. alice and bob talk, --rounds times: alice sends bob "<tag> a2b <i>", bob
   waits for it and answers "<tag> b2a <i>", alice waits for that. After
   rounds 2 and 4 carol sends alice "<tag> c2a <k>" (k = 1, 2), which
   alice waits for. Every message alice receives is printed with the
   stanza-id the plugin reads from it.
2. The three log out; alice logs in again as a new session (resource
   "archive", xep_0313 and xep_0359 loaded) and reads her archive with the
   plugin, the plugin's paging (xep_0059's ResultIterator) asking 5 at a
   time:
     * get_fields: the query form's fields;
     * "with": retrieve(with_jid=bob, iterator=True, rsm={max: 5}), page by
       page (<after/> the last id of the page before);
     * "reverse": iterate(with_jid=bob, reverse=True, rsm={max: 5}), the
       plugin's own message iterator backwards (<before/>, then <before/>
       the first id of the page before), newest first;
     * "all": iterate(rsm={max: 5}), no filter;
     * "one-page": retrieve(rsm={max: 5}), a single query;
     * "start": retrieve(with_jid=bob, start=<the stamp of the 7th "with"
       result, as the plugin parsed it, or when it could not, the stamp
       cut to microseconds>, rsm={max: 50});
     * "end": the same with end=<that stamp> instead: the first seven (the
       end is inclusive, XEP-0313 §4.1.1).

Lines on stdout the test reads, besides common.Client's:

    LIVE {"body", "from", "sid_by", "sid_id"}   a message alice received
    FIELDS ["var", ...]
    PAGE <label> {"n", "first", "last", "complete"}   a page's <fin/>
    RESULT <label> {"id", "queryid", "from", "to", "body", "stamp",
                    "stamp_parsed", "stamp_error", "sid"}
        stamp is the delay's stamp attribute; stamp_parsed what the plugin
        (xep_0203, xep_0082.parse) makes of it, ISO 8601, or null when it
        raised, and stamp_error then says what it raised
    DONE <label> <count>
    START_FROM <plugin|cut> <the start and end sent, ISO 8601>
    STEP_FAILED <label> <what happened>
    OK

A step that fails prints STEP_FAILED and the next steps run. Exits 0 when
every step ran, 1 on any other error and 2 on the overall timeout.
"""

import asyncio
import json
import os
import sys
import traceback
from datetime import datetime

# common.py sits next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from slixmpp import JID  # noqa: E402

import common  # noqa: E402
from common import say  # noqa: E402

STEP = 15  # seconds any single answer may take
NS_DELAY = "urn:xmpp:delay"
NS_SID = "urn:xmpp:sid:0"


class Inbox:
    """The bodies of the chat messages a client got, with a way to wait."""

    def __init__(self, client, report=False):
        self.role = client.role
        self.bodies = []
        self.report = report
        self.changed = asyncio.Event()
        client.add_event_handler("message", self.on_message)

    def on_message(self, msg):
        if msg["type"] not in ("chat", "normal") or not msg["body"]:
            return
        if self.report:
            sid = msg.xml.find("{%s}stanza-id" % NS_SID)
            say("LIVE", json.dumps({
                "body": msg["body"], "from": str(msg["from"]),
                # What the xep_0359 plugin reads, and null without one.
                "sid_by": msg["stanza_id"]["by"] if sid is not None else None,
                "sid_id": msg["stanza_id"]["id"] if sid is not None else None,
            }, ensure_ascii=False))
        self.bodies.append(msg["body"])
        self.changed.set()

    async def message(self, body):
        await common.until(self.changed, lambda: body in self.bodies, STEP,
                           "%s did not get %r" % (self.role, body))


def result_json(msg):
    """One archived message as the plugin presents it."""
    res = msg["mam_result"]
    fwd = res["forwarded"]
    inner = fwd["stanza"]
    delay = msg.xml.find(".//{%s}delay" % NS_DELAY)
    stamp = delay.get("stamp") if delay is not None else None
    parsed, error = None, None
    try:
        dt = fwd["delay"]["stamp"]
        parsed = dt.isoformat() if dt is not None else None
    except Exception as e:  # noqa: BLE001 - what the plugin raises is the finding
        error = "%s: %s" % (type(e).__name__, e)
    sid = inner.xml.find("{%s}stanza-id" % NS_SID)
    return {
        "id": res["id"], "queryid": res["queryid"],
        "from": str(inner["from"]), "to": str(inner["to"]), "body": inner["body"],
        "stamp": stamp, "stamp_parsed": parsed, "stamp_error": error,
        "sid": sid.get("id") if sid is not None else None,
    }


def report(label, msg):
    r = result_json(msg)
    say("RESULT", label, json.dumps(r, ensure_ascii=False))
    return r


def micro_stamp(stamp):
    """A XEP-0082 UTC stamp with any fraction, cut to microseconds."""
    whole, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat("%s.%s+00:00" % (whole, (frac + "000000")[:6]))


def page_json(iq, n):
    fin = iq.xml.find("{urn:xmpp:mam:2}fin")
    rsm = iq["mam_fin"]["rsm"]
    return {"n": n, "first": rsm["first"] or None, "last": rsm["last"] or None,
            "complete": fin is not None and fin.get("complete") in ("true", "1")}


async def step(label, coro):
    """Run one step; a failure is printed and the run goes on."""
    try:
        return await asyncio.wait_for(coro, 4 * STEP)
    except Exception as e:  # noqa: BLE001 - reported, the next steps run
        traceback.print_exc()
        say("STEP_FAILED", label, "%s: %s" % (type(e).__name__, e))
        return None


async def talk(args):
    """Step 1: the conversation, with carol's two messages in between."""
    alice = common.Client("alice", args.alice_jid, args.alice_password, args.cafile,
                          plugins=("xep_0030", "xep_0359"))
    bob = common.Client("bob", args.bob_jid, args.bob_password, args.cafile)
    carol = common.Client("carol", args.carol_jid, args.carol_password, args.cafile)
    inbox = {"alice": Inbox(alice, report=True), "bob": Inbox(bob)}
    for c in (alice, bob, carol):
        await c.login(args.host, args.port)

    def send(src, to, body):
        src.make_message(mto=to, mbody=body, mtype="chat").send()

    carols = 0
    for i in range(1, args.rounds + 1):
        b = "%s a2b %d" % (args.tag, i)
        send(alice, JID(args.bob_jid).bare, b)
        await inbox["bob"].message(b)
        b = "%s b2a %d" % (args.tag, i)
        send(bob, JID(args.alice_jid).bare, b)
        await inbox["alice"].message(b)
        if i in (2, 4):
            carols += 1
            b = "%s c2a %d" % (args.tag, carols)
            send(carol, JID(args.alice_jid).bare, b)
            await inbox["alice"].message(b)
    await asyncio.gather(alice.logout(), bob.logout(), carol.logout())


async def pages(label, mam, **kw):
    """retrieve(iterator=True): each page's <fin/> and results."""
    got = []
    async for iq in mam.retrieve(iterator=True, **kw):
        results = iq["mam"]["results"]
        say("PAGE", label, json.dumps(page_json(iq, len(results))))
        for msg in results:
            got.append(report(label, msg))
    say("DONE", label, len(got))
    return got


async def messages(label, mam, **kw):
    """iterate(): the plugin's own message iterator."""
    got = []
    async for msg in mam.iterate(**kw):
        got.append(report(label, msg))
    say("DONE", label, len(got))
    return got


async def one_page(label, mam, **kw):
    """retrieve() without the iterator: one query, one page."""
    iq = await mam.retrieve(timeout=STEP, **kw)
    results = iq["mam"]["results"]
    say("PAGE", label, json.dumps(page_json(iq, len(results))))
    for msg in results:
        report(label, msg)
    say("DONE", label, len(results))


async def fields(mam):
    form = await mam.get_fields(timeout=STEP)
    say("FIELDS", json.dumps(sorted(form.get_fields().keys())))


async def run(args):
    await talk(args)

    alice = common.Client("archive", "%s/archive" % JID(args.alice_jid).bare,
                          args.alice_password, args.cafile,
                          plugins=("xep_0030", "xep_0359", "xep_0313"))
    await alice.login(args.host, args.port)
    mam = alice.plugin["xep_0313"]
    bob = JID(JID(args.bob_jid).bare)

    await step("fields", fields(mam))
    with_bob = await step("with", pages("with", mam, with_jid=bob, rsm={"max": 5}))
    await step("reverse", messages("reverse", mam, with_jid=bob, reverse=True, rsm={"max": 5}))
    await step("all", messages("all", mam, rsm={"max": 5}))
    await step("one-page", one_page("one-page", mam, rsm={"max": 5}))
    if with_bob and len(with_bob) >= 7:
        # The stamp as the plugin parsed it, which the plugin formats again
        # (xep_0082.format_datetime); when it could not, the stamp cut to
        # the microseconds Python keeps, which still starts at or before
        # the message.
        seventh = with_bob[6]
        if seventh["stamp_parsed"] is not None:
            start, how = datetime.fromisoformat(seventh["stamp_parsed"]), "plugin"
        else:
            start, how = micro_stamp(seventh["stamp"]), "cut"
        say("START_FROM", how, start.isoformat())
        await step("start", one_page("start", mam, with_jid=bob, start=start, rsm={"max": 50}))
        await step("end", one_page("end", mam, with_jid=bob, end=start, rsm={"max": 50}))
    else:
        say("STEP_FAILED", "start", "no 7th result with bob to start from")
    await alice.logout()
    say("OK")


def main():
    p = common.parser(__doc__, logins=("alice-", "bob-", "carol-"), jid_help="a bare JID", timeout=60.0)
    p.add_argument("--tag", required=True, help="first word of every body")
    p.add_argument("--rounds", type=int, default=6, help="messages each way between alice and bob")
    args = p.parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
