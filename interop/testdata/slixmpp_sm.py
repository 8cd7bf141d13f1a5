#!/usr/bin/python3
"""slixmpp's own XEP-0198 plugin (xep_0198) enables, acknowledges and resumes.

Run by interop/sm_test.go with Debian's /usr/bin/python3 and python3-slixmpp
1.8.3. Two clients log in as in common.py (STARTTLS with the server's
self-signed certificate, SCRAM), both with xep_0198 loaded, which enables
stream management once the resource is bound: alice asks for resumption
(the plugin's allow_resume, True by default), bob does not.

1. bob sends alice's full JID --before chat messages; alice answers the
   server's <r/> (the plugin's send_ack, wrapped here to print each h it
   sends), sends bob --replies messages and asks the server for
   acknowledgements (the plugin's request_ack) until they cover all she
   sent. (slixmpp's plugin drops its queue of stanzas not acknowledged when
   it sends <resume/>, so alice must have nothing in flight at the cut: it
   would be lost on her side, whatever the server answers.)
2. alice's transport stops reading (asyncio's pause_reading) and bob sends
   her --inflight messages, which the server acknowledges to him: the
   server writes them to her socket, where they wait unread. Then her
   transport is aborted under TLS (no closing tag, no TLS close_notify), as
   a network that goes does. While she is away bob sends her full JID
   --away messages and waits until the server acknowledged all he sent (his
   own <r/> answered with an h that covers them), so they are in the
   server's hands.
3. alice connects again; slixmpp sends <resume previd h/> before binding
   and must get <resumed/> (event session_resumed). She must then receive
   the in-flight messages (the server writes again what her h does not
   cover), the away messages and bob's last message ("after"), each once,
   with no second bind and the same full JID; <resumed h/> counts all
   alice had sent. bob gets alice's "done" last.

Lines on stdout the test reads, besides common.Client's:

    BOUND <role> <full JID>              each session_bind
    SM_ENABLED <role> id=<id> resume=<true|false> max=<seconds>
    ACK_SENT alice <h>                   alice answered the server's <r/>
    CUT alice <handled> <seq> <last_ack> the transport was aborted
    DISCONNECTED alice
    AWAY_ACKED bob <last_ack> <seq>      the server acknowledged bob's stanzas
    RESUMED alice previd=<id> h=<the server's h> handled=<alice's h>
    SM_FAILED alice <condition>          (a failure: resumption refused)
    RECEIVED <role> <body>               each chat message, duplicates too
    FINAL <role> handled=<h> seq=<n> last_ack=<n> binds=<n> jid=<full JID>
    OK

Bodies are "<tag> before <i>", "<tag> reply <i>", "<tag> inflight <i>",
"<tag> away <i>", "<tag> after" and "<tag> done".

With --caps the script checks another stream feature instead, XEP-0115's
<c/> (§6.3): alice logs in with xep_0115 loaded and prints the <c/> of
every <stream:features/> she gets. slixmpp acts on the one after
authentication only (its 'caps' feature is ordered after bind): it asks the
server for disco#info of node#ver, recomputes the verification string and
stores it for the server's JID only if it matches. The script waits for
that, then asks for disco#info of the server without a node and of node#ver
itself and computes the string of each answer with xep_0115's
generate_verstring (XEP-0115 §5.1).

    FEATURES <n> <c's hash> <c's node> <c's ver>   (or "FEATURES <n> -")
    CAPS_STORED <the ver slixmpp stored for the server, or ->
    CAPS_COMPUTED <root|node> <hash of the answer> <node attribute of it>

Exits 0 when every step happened, 1 on any error and 2 on the overall
timeout.
"""

import asyncio
import hashlib
import os
import sys

# common.py sits next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from slixmpp.xmlstream.handler import Callback  # noqa: E402
from slixmpp.xmlstream.matcher import MatchXPath  # noqa: E402

import common  # noqa: E402
from common import say  # noqa: E402

STEP = 15  # seconds any single step may take


class Received:
    """The chat bodies a client got from one peer, and a way to wait for one."""

    def __init__(self, client, role, peer_bare):
        self.bodies = []
        self.changed = asyncio.Event()
        self.role = role

        def on_message(msg):
            if msg["type"] != "chat" or msg["from"].bare != peer_bare:
                return
            say("RECEIVED", role, msg["body"])
            self.bodies.append(msg["body"])
            self.changed.set()

        client.add_event_handler("message", on_message)

    async def wait_for(self, bodies):
        """Wait until every body of bodies arrived."""
        def missing():
            return [b for b in bodies if b not in self.bodies]
        await common.until(self.changed, lambda: not missing(), STEP,
                           lambda: "%s did not receive %r" % (self.role, missing()))


def sm_state(client):
    sm = client.plugin["xep_0198"]
    return sm.handled, sm.seq, sm.last_ack


async def all_acked(client):
    """Ask the server for an acknowledgement until it covers every stanza sent."""
    sm = client.plugin["xep_0198"]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP
    while sm.last_ack != sm.seq:
        if loop.time() > deadline:
            raise RuntimeError("%s: server acknowledged %d of %d stanzas" % (client.role, sm.last_ack, sm.seq))
        sm.request_ack()
        await asyncio.sleep(0.1)


def watch_sm(client):
    """Report sm_enabled and count binds; return a future done at sm_enabled."""
    loop = asyncio.get_running_loop()
    enabled = loop.create_future()
    client.binds = 0

    def on_bind(jid):
        client.binds += 1
        say("BOUND", client.role, jid.full)

    def on_enabled(stanza):
        say("SM_ENABLED", client.role, "id=%s" % (stanza["id"] or "-"),
            "resume=%s" % str(bool(stanza["resume"])).lower(), "max=%s" % (stanza["max"] or "-"))
        if not enabled.done():
            enabled.set_result(stanza)

    def on_failed(stanza):
        say("SM_FAILED", client.role, stanza.xml[0].tag.split("}")[-1] if len(stanza.xml) else "-")

    client.add_event_handler("session_bind", on_bind)
    client.add_event_handler("sm_enabled", on_enabled)
    client.add_event_handler("sm_failed", on_failed)
    return enabled


async def run(args):
    alice = common.Client("alice", args.alice_jid, args.alice_password, args.cafile,
                          plugins=("xep_0198",), roster=True)
    bob = common.Client("bob", args.bob_jid, args.bob_password, args.cafile,
                        plugins=("xep_0198",), roster=True)
    bob.plugin["xep_0198"].allow_resume = False
    if not alice.plugin["xep_0198"].allow_resume:
        raise RuntimeError("xep_0198's allow_resume is off by default")
    alice_enabled, bob_enabled = watch_sm(alice), watch_sm(bob)
    alice_got = Received(alice, "alice", bob.boundjid.bare)
    bob_got = Received(bob, "bob", alice.boundjid.bare)

    # Print every h alice sends in answer to the server's <r/>.
    sm = alice.plugin["xep_0198"]
    plugin_send_ack = sm.send_ack
    acks_sent = asyncio.Event()

    def send_ack():
        say("ACK_SENT", "alice", sm.handled)
        acks_sent.set()
        plugin_send_ack()

    sm.send_ack = send_ack

    await alice.login(args.host, args.port)
    await asyncio.wait_for(alice_enabled, STEP)
    await bob.login(args.host, args.port)
    await asyncio.wait_for(bob_enabled, STEP)
    alice_full = alice.boundjid.full

    def body(*words):
        return " ".join((args.tag,) + tuple(str(w) for w in words))

    # 1. Messages to alice, which she acknowledges when the server asks.
    before = [body("before", i) for i in range(args.before)]
    for b in before:
        bob.send_message(mto=alice_full, mbody=b, mtype="chat")
    await alice_got.wait_for(before)
    try:
        await asyncio.wait_for(acks_sent.wait(), STEP)
    except asyncio.TimeoutError:
        raise RuntimeError("the server never asked alice for an acknowledgement") from None
    replies = [body("reply", i) for i in range(args.replies)]
    for b in replies:
        alice.send_message(mto=bob.boundjid.bare, mbody=b, mtype="chat")
    # slixmpp 1.8.3 forgets what it sent and the server did not acknowledge
    # when it sends <resume/> (its _handle_outgoing clears the unacked queue
    # for Resume as for Enable), so what is still in flight at the cut would
    # be lost by the client whatever <resumed h/> says: the replies are
    # acknowledged first.
    await all_acked(alice)

    # Messages the server writes to alice and she never reads: her
    # transport stops reading, bob's messages are acknowledged to him (so
    # the server has them), and the cut throws away what her socket holds.
    inflight = [body("inflight", i) for i in range(args.inflight)]
    alice.transport.pause_reading()
    for b in inflight:
        bob.send_message(mto=alice_full, mbody=b, mtype="chat")
    await all_acked(bob)

    # 2. The network goes: no </stream:stream>, no close_notify.
    gone = alice.disconnected
    say("CUT", "alice", *sm_state(alice))
    alice.transport.abort()
    await asyncio.wait_for(gone, STEP)
    say("DISCONNECTED", "alice")
    away = [body("away", i) for i in range(args.away)]
    for b in away:
        bob.send_message(mto=alice_full, mbody=b, mtype="chat")
    await all_acked(bob)
    _, bseq, back = sm_state(bob)
    say("AWAY_ACKED", "bob", back, bseq)

    # 3. alice comes back and resumes.
    loop = asyncio.get_running_loop()
    resumed = loop.create_future()

    def on_resumed(stanza):
        if not resumed.done():
            resumed.set_result(stanza)

    def on_failed(stanza):
        if not resumed.done():
            resumed.set_exception(RuntimeError("alice: resumption failed: %s" % stanza))

    def on_session_end(_e):
        if not resumed.done():
            resumed.set_exception(RuntimeError("alice: the session ended instead of resuming"))

    alice.add_event_handler("session_resumed", on_resumed)
    alice.add_event_handler("sm_failed", on_failed)
    alice.add_event_handler("session_end", on_session_end)
    alice.connect(address=(args.host, args.port), force_starttls=True)
    r = await asyncio.wait_for(resumed, STEP)
    say("RESUMED", "alice", "previd=%s" % r["previd"], "h=%s" % r["h"], "handled=%d" % sm.handled)
    await alice_got.wait_for(inflight + away)
    after = body("after")
    bob.send_message(mto=alice_full, mbody=after, mtype="chat")
    await alice_got.wait_for([after])
    done = body("done")
    alice.send_message(mto=bob.boundjid.bare, mbody=done, mtype="chat")
    await bob_got.wait_for(replies + [done])
    await all_acked(alice)
    await all_acked(bob)
    for c in (alice, bob):
        h, seq, last = sm_state(c)
        say("FINAL", c.role, "handled=%d" % h, "seq=%d" % seq, "last_ack=%d" % last,
            "binds=%d" % c.binds, "jid=%s" % c.boundjid.full)

    await asyncio.gather(alice.logout(), bob.logout())
    say("OK")


NS_CAPS = "http://jabber.org/protocol/caps"


async def run_caps(args):
    alice = common.Client("alice", args.alice_jid, args.alice_password, args.cafile,
                          plugins=("xep_0030", "xep_0115"))
    caps = alice.plugin["xep_0115"]
    # slixmpp knows sha-1 and md5; a server may pick another hash of
    # XEP-0115 §5 (from the IANA registry, as named by RFC 3174 and
    # hashlib): recognise the usual ones so that the check still runs.
    for name in ("sha-224", "sha-256", "sha-384", "sha-512"):
        caps.hashes.setdefault(name, getattr(hashlib, name.replace("-", "")))
    seen = []

    def on_features(features):
        c = features.xml.find("{%s}c" % NS_CAPS)
        n = len(seen) + 1
        if c is None:
            seen.append(None)
            say("FEATURES", n, "-")
        else:
            seen.append((c.get("hash"), c.get("node"), c.get("ver")))
            say("FEATURES", n, c.get("hash") or "-", c.get("node") or "-", c.get("ver") or "-")

    alice.register_handler(Callback("caps in stream features",
                                    MatchXPath("{%s}features" % alice.stream_ns), on_features))
    await alice.login(args.host, args.port)
    domain = alice.boundjid.domain
    last = seen[-1] if seen else None
    if last is None:
        # Nothing to check: the test reads the FEATURES lines.
        await alice.logout()
        say("OK")
        return
    hash_name, node, ver = last

    # slixmpp's own processing (entity_caps, then disco#info of node#ver
    # and its check) runs in the background: wait until it stored the ver,
    # or give up after STEP and print what it has.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP
    stored = None
    while loop.time() < deadline:
        stored = await caps.get_verstring(domain)
        if stored:
            break
        await asyncio.sleep(0.1)
    say("CAPS_STORED", stored or "-")

    for which, query_node in (("root", None), ("node", "%s#%s" % (node, ver))):
        iq = await alice.plugin["xep_0030"].get_info(jid=domain, node=query_node, cached=False,
                                                      timeout=STEP)
        info = iq["disco_info"]
        say("CAPS_COMPUTED", which, caps.generate_verstring(info, hash_name) or "-",
            info["node"] or "-")
    await alice.logout()
    say("OK")


def main():
    p = common.parser(__doc__, logins=("alice-", "bob-"))
    p.add_argument("--tag", required=True, help="first word of every body")
    p.add_argument("--before", type=int, default=7, help="messages to alice before the cut")
    p.add_argument("--replies", type=int, default=3, help="alice's messages to bob just before the cut")
    p.add_argument("--inflight", type=int, default=2,
                   help="messages to alice written to her socket and never read before the cut")
    p.add_argument("--away", type=int, default=3, help="messages to alice while she is away")
    p.add_argument("--caps", action="store_true", help="check XEP-0115 caps in the stream features instead")
    args = p.parse_args()
    common.main(run_caps if args.caps else run, args)


if __name__ == "__main__":
    main()
