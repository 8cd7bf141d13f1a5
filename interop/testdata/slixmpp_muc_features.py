#!/usr/bin/python3
"""slixmpp's xep_0045 and xep_0249 plugins use a group chat feature of adhocd's service.

Run by interop/muc_clients_test.go with Debian's /usr/bin/python3 and
python3-slixmpp 1.8.3, once per scenario (--scenario). Three clients,
alice, bob and carol, log in as in common.py. In every scenario alice
creates the room (join_muc_wait on a room that does not exist: status 201),
reads its configuration form (get_room_config), sets the scenario's fields
in it and submits it (set_room_config), which unlocks the room. Then:

  ban       bob joins; alice bans him (set_affiliation outcast, with a
            reason); bob sees his own unavailable presence with 301 and the
            reason, alice sees him go with 301; the outcast list
            (get_affiliation_list) holds bob's bare JID; bob's new join is
            refused; alice lifts the ban (affiliation none) and bob joins.
  history   alice sends three messages and waits for the room to echo each;
            bob joins with maxstanzas=2, carol with maxstanzas=0, then
            carol leaves and joins again with no <history/>; each join's
            history is what join_muc_wait collected (messages with a
            XEP-0203 delay from the room). Then alice sends a fourth
            message, which bob gets live.
  invite    the room is members-only: carol's join is refused; alice sends
            carol a XEP-0249 direct invitation (xep_0249's
            send_invitation) and bob a mediated one (xep_0045's invite);
            each invitee's plugin fires its event (groupchat_direct_invite,
            groupchat_invite); the member list holds bob, whom the mediated
            invitation made a member, and bob joins.
  subject   bob joins and gets the room's empty subject; alice sets one
            (set_subject), which both see; bob, a participant, tries to
            change it and is refused; carol joins later and gets alice's
            subject.
  password  the room has a password (muc#roomconfig_passwordprotectedroom,
            muc#roomconfig_roomsecret); bob reads its features
            (xep_0030's get_info), his join is refused without the
            password and with a wrong one, and he joins with it; alice
            invites carol (mediated), the invitation carries the password,
            and carol joins with the password it carries.

Lines on stdout the test reads, besides common.Client's (slixmpp 1.8.3's
xep_0045 also prints the delay of each message it sees while joining; the
test keeps only these):

    CREATED <status codes of alice's self-presence, sorted>
    JOINED <label> <status codes of the self-presence> <occupants seen, sorted> <subject JSON>
    REFUSED <label> <error condition> <error type>
    BANNED <label> {"codes", "reason", "actor"}     an unavailable presence with 301
    LIST <affiliation> <bare JIDs, sorted, comma-separated, or ->
    HISTORY <label> [{"from", "body", "delay_from", "stamp", "stamp_attr", "stamp_error"}, ...]
        (stamp as xep_0203 parsed the delay's stamp attribute, stamp_attr, or
        null and why it could not, stamp_error)
    LIVE <label> {"from", "body", "delayed"}
    INVITE <label> {"kind", "from", "room", "inviter", "reason", "password"}
    SUBJECT <label> {"from", "subject"}            a subject change seen live
    FEATURES <label> <the room's muc_* features, sorted, comma-separated>
    OK

Exits 0 when every step happened, 1 on any error and 2 on the overall
timeout.
"""

import asyncio
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from slixmpp import JID  # noqa: E402
from slixmpp.exceptions import PresenceError  # noqa: E402
from slixmpp.xmlstream.handler import Callback  # noqa: E402
from slixmpp.xmlstream.matcher import StanzaPath  # noqa: E402

import common  # noqa: E402
from common import say  # noqa: E402

STEP = 10  # seconds any single answer may take
PLUGINS = ("xep_0030", "xep_0045", "xep_0203", "xep_0249")


def codes(pres):
    return ",".join(sorted(str(c) for c in pres["muc"]["status_codes"])) or "-"


def dumps(v):
    return json.dumps(v, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def subject_json(msg):
    return {"from": str(msg["from"]), "subject": msg["subject"]}


class Seen:
    """What one kind of event brought a client, in order, to wait on."""

    def __init__(self):
        self.items = []
        self.changed = asyncio.Event()

    def add(self, item):
        self.items.append(item)
        self.changed.set()

    async def first(self, test, what, start=0):
        """The first item from the start'th on that test accepts, waiting
        for it up to STEP."""
        found = []

        def check():
            for i in self.items[start:]:
                if test(i):
                    found.append(i)
                    return True
            return False
        await common.until(self.changed, check, STEP, "no " + what)
        return found[0]


class Scenario:
    """The three clients, logged in, and the room of the run."""

    def __init__(self, args):
        self.args = args
        self.room = JID(args.room)
        self.clients = {
            name: common.Client(name, getattr(args, name + "_jid"), getattr(args, name + "_password"),
                                args.cafile, plugins=PLUGINS)
            for name in ("alice", "bob", "carol")
        }
        # Every groupchat message (with a body), subject and message error of
        # the room, every room presence (unavailable ones included, which
        # xep_0045 drops once the client left the room), and every
        # invitation, per client.
        self.messages, self.subjects, self.errors, self.presences, self.invites = ({n: Seen() for n in self.clients}
                                                                                    for _ in range(5))
        for name, c in self.clients.items():
            c.add_event_handler("muc::%s::message" % self.room, self.messages[name].add)
            c.add_event_handler("muc::%s::groupchat_subject" % self.room, self.subjects[name].add)
            c.add_event_handler("muc::%s::message_error" % self.room, self.errors[name].add)
            c.add_event_handler("groupchat_invite", lambda m, n=name: self.invites[n].add(("mediated", m)))
            c.add_event_handler("groupchat_direct_invite", lambda m, n=name: self.invites[n].add(("direct", m)))
            c.register_handler(Callback("room presence %s" % name, StanzaPath("presence"),
                                        lambda p, n=name: self._on_presence(n, p)))

    def _on_presence(self, name, pres):
        if pres["from"].bare == self.room.bare:
            self.presences[name].add(pres)

    def muc(self, name):
        return self.clients[name].plugin["xep_0045"]

    def nick_jid(self, nick):
        return JID("%s/%s" % (self.room, nick))

    async def login(self):
        await asyncio.gather(*(c.login(self.args.host, self.args.port) for c in self.clients.values()))

    async def logout(self):
        await asyncio.gather(*(c.logout() for c in self.clients.values()))

    async def create(self, values=None):
        """alice creates the room and submits its form with values set."""
        pres, _subject, _occupants, _history = await self.muc("alice").join_muc_wait(self.room, "alice", timeout=STEP)
        say("CREATED", codes(pres))
        form = await self.muc("alice").get_room_config(self.room, timeout=STEP)
        if values:
            form.set_values(values)
        await self.muc("alice").set_room_config(self.room, form, timeout=STEP)

    async def join(self, name, label=None, **kw):
        """name joins as name; prints JOINED and returns the history."""
        pres, subject, occupants, history = await self.muc(name).join_muc_wait(self.room, name, timeout=STEP, **kw)
        others = sorted(p["from"].resource for p in occupants)
        say("JOINED", label or name, codes(pres), ",".join(others) or "-", dumps(subject_json(subject)))
        return history

    async def refused(self, name, label, **kw):
        """name's join must be refused: prints REFUSED."""
        try:
            await self.muc(name).join_muc_wait(self.room, name, timeout=STEP, **kw)
        except PresenceError as e:
            say("REFUSED", label, e.condition, e.etype)
            return
        raise RuntimeError("%s: %s joined, want a refusal" % (label, name))

    async def leave(self, name):
        """name leaves and waits for its own unavailable presence."""
        seen = len(self.presences[name].items)
        self.muc(name).leave_muc(self.room, name)
        await self.presences[name].first(
            lambda p: p["type"] == "unavailable" and p["from"] == self.nick_jid(name),
            "unavailable presence after leaving", start=seen)

    async def say_and_wait(self, body):
        """alice sends body to the room and waits for its echo."""
        self.clients["alice"].send_message(mto=self.room, mbody=body, mtype="groupchat")
        await self.messages["alice"].first(lambda m: m["body"] == body, "echo of %r" % body)

    async def affiliation_list(self, affiliation):
        jids = await self.muc("alice").get_affiliation_list(self.room, affiliation, timeout=STEP)
        say("LIST", affiliation, ",".join(sorted(str(j) for j in jids)) or "-")

    # The scenarios.

    async def ban(self):
        await self.create()
        await self.join("bob")
        bob = self.clients["bob"].boundjid.bare
        await self.muc("alice").set_affiliation(self.room, "outcast", jid=JID(bob), reason="spam", timeout=STEP)
        for name in ("bob", "alice"):
            pres = await self.presences[name].first(
                lambda p: p["type"] == "unavailable" and p["from"] == self.nick_jid("bob"), "bob's unavailable presence")
            item = pres["muc"]["item"]
            say("BANNED", name, dumps({"codes": codes(pres), "reason": item["reason"], "actor": item["actor"]["nick"]}))
        await self.affiliation_list("outcast")
        await self.refused("bob", "bob-banned")
        await self.muc("alice").set_affiliation(self.room, "none", jid=JID(bob), timeout=STEP)
        await self.affiliation_list("outcast")
        await self.join("bob", "bob-unbanned")

    async def history(self):
        await self.create()
        bodies = ["%s %d" % (self.args.body, i) for i in (1, 2, 3)]
        for b in bodies:
            await self.say_and_wait(b)

        def stamp(m):
            """The delay's stamp as xep_0203 reads it, and why it could not."""
            try:
                return m["delay"]["stamp"].isoformat(), None
            except ValueError as e:
                return None, str(e)

        def report(label, history):
            items = []
            for m in history:
                st, err = stamp(m)
                items.append({
                    "from": str(m["from"]),
                    "body": m["body"],
                    "delay_from": str(m["delay"]["from"]),
                    "stamp": st,
                    "stamp_attr": m["delay"].xml.get("stamp"),
                    "stamp_error": err,
                })
            say("HISTORY", label, dumps(items))

        report("bob-maxstanzas-2", await self.join("bob", maxstanzas=2))
        report("carol-maxstanzas-0", await self.join("carol", "carol-maxstanzas-0", maxstanzas=0))
        await self.leave("carol")
        report("carol-all", await self.join("carol", "carol-all"))
        live = "%s live" % self.args.body
        self.clients["alice"].send_message(mto=self.room, mbody=live, mtype="groupchat")
        m = await self.messages["bob"].first(lambda m: m["body"] == live, "bob: %r" % live)
        say("LIVE", "bob", dumps({"from": str(m["from"]), "body": m["body"],
                                  "delayed": m.get_plugin("delay", check=True) is not None}))

    def report_invite(self, label, kind, msg):
        if kind == "direct":
            inv = msg["groupchat_invite"]
            v = {"room": str(inv["jid"]), "inviter": None, "password": inv["password"] or None}
        else:
            inv = msg["muc"]["invite"]
            password = msg["muc"].xml.find("{http://jabber.org/protocol/muc#user}password")
            v = {"room": str(msg["from"].bare), "inviter": str(inv["from"]),
                 "password": password.text if password is not None else None}
        v.update(kind=kind, reason=inv["reason"], **{"from": str(msg["from"])})
        say("INVITE", label, dumps(v))

    async def invite(self):
        await self.create({"muc#roomconfig_membersonly": True})
        await self.refused("carol", "carol-not-member")
        room = self.room.bare
        self.clients["alice"].plugin["xep_0249"].send_invitation(
            JID(self.clients["carol"].boundjid.bare), JID(room), reason="direct " + self.args.body)
        kind, msg = await self.invites["carol"].first(lambda i: i[0] == "direct", "direct invitation for carol")
        self.report_invite("carol", kind, msg)
        self.muc("alice").invite(JID(room), JID(self.clients["bob"].boundjid.bare), reason="mediated " + self.args.body)
        kind, msg = await self.invites["bob"].first(lambda i: i[0] == "mediated", "mediated invitation for bob")
        self.report_invite("bob", kind, msg)
        await self.affiliation_list("member")
        await self.join("bob")

    async def subject(self):
        await self.create()
        await self.join("bob")
        subject = "subject " + self.args.body
        self.muc("alice").set_subject(self.room, subject)
        for name in ("alice", "bob"):
            m = await self.subjects[name].first(lambda m: m["subject"] == subject, "%s: the new subject" % name)
            say("SUBJECT", name, dumps(subject_json(m)))
        self.muc("bob").set_subject(self.room, "bob's subject")
        e = await self.errors["bob"].first(lambda m: True, "an error for bob's subject")
        say("REFUSED", "bob-subject", e["error"]["condition"], e["error"]["type"])
        await self.join("carol")

    async def password(self):
        secret = self.args.room_password
        await self.create({"muc#roomconfig_passwordprotectedroom": True, "muc#roomconfig_roomsecret": secret})
        info = await self.clients["bob"].plugin["xep_0030"].get_info(jid=self.room, timeout=STEP)
        features = sorted(f for f in info["disco_info"]["features"] if f.startswith("muc_"))
        say("FEATURES", "bob", ",".join(features))
        await self.refused("bob", "bob-no-password")
        await self.refused("bob", "bob-wrong-password", password=secret + "-wrong")
        await self.join("bob", password=secret)
        self.muc("alice").invite(self.room, JID(self.clients["carol"].boundjid.bare))
        kind, msg = await self.invites["carol"].first(lambda i: i[0] == "mediated", "mediated invitation for carol")
        self.report_invite("carol", kind, msg)
        password = msg["muc"].xml.find("{http://jabber.org/protocol/muc#user}password")
        await self.join("carol", password=password.text if password is not None else "")


async def run(args):
    s = Scenario(args)
    await s.login()
    await getattr(s, args.scenario)()
    await s.logout()
    say("OK")


def main():
    p = common.parser(__doc__, logins=("alice-", "bob-", "carol-"))
    p.add_argument("--scenario", required=True, choices=("ban", "history", "invite", "subject", "password"))
    p.add_argument("--room", required=True)
    p.add_argument("--body", required=True, help="the start of every message body, subject and reason")
    p.add_argument("--room-password", default="", help="the room's password (scenario password)")
    args = p.parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
