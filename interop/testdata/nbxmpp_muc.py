#!/usr/bin/python3
"""A group chat with nbxmpp, the way Gajim 1.7 creates, joins, uses and leaves a room.

Gajim's library, nbxmpp (Debian's python3-nbxmpp 4.2.2), on a GLib main
loop, logged in as nbxmpp_common.py does (STARTTLS to --host:--port, only
the certificate in --cafile accepted, nbxmpp's SASL mechanisms). nbxmpp
4.2.2's MUC module has no join call: it parses what rooms send (presence
with muc#user, groupchat messages, subjects) into the properties Gajim's
handlers read, and Gajim's own MUC module (gajim/common/modules/muc.py)
sends the join presence. The script does what Gajim does when the user
creates a public group chat (gtk/groupchat_creation.py) and then chats:

  * MUC.request_info of the room, as Gajim's Discovery.disco_muc does
    before a join: item-not-found, the room does not exist yet;
  * the presence Gajim's _create sends, to room/nick with an empty
    <x xmlns='http://jabber.org/protocol/muc'/>; the self-presence as
    nbxmpp parsed it (110 and 201, the affiliation and role);
  * Gajim's configure_room on 201: MUC.request_config, the values Gajim
    sets for a public room (get_default_muc_config and the creation
    dialog's name, description, public, not members-only, whois
    moderators) put in the form nbxmpp parsed, MUC.set_config; it prints
    CONFIGURED and the test's Go occupant joins;
  * bob's presence as an occupant; a groupchat message as Gajim sends one
    (an id and the same origin-id), its reflection from the room and
    bob's answer, each as nbxmpp parsed it (handlers at Gajim's priority,
    after nbxmpp's own);
  * MUC.set_subject, and the subject as nbxmpp parsed it (muc_subject);
  * Discovery.disco_info of the room (Gajim's room info): identity,
    features and the muc#roominfo form through nbxmpp's DiscoInfo;
  * Gajim's leave: unavailable presence to room/nick; the self-presence
    of leaving (110).

Lines on stdout (JSON after the label):

    LOGIN {"jid", "mechanism"}
    INFO_ERROR {"class", "condition", "text"}   the room's disco#info before it exists
    SELF <label> {"type", "codes", "affiliation", "role", "nick", "jid", "occupant_id"}
        (jid: the item's, which nbxmpp reads as a bare JID)
    CONFIG {"form_type", "fields"}               the form nbxmpp parsed: field vars, sorted
    CONFIGURED
    OCCUPANT {"nick", "affiliation", "role", "occupant_id"}
    GROUPCHAT <label> {"nick", "body", "origin_id", "occupant_id", "delayed"}
        (the reflection also has "sent_id", the id and origin-id sent)
    SUBJECT {"text", "author"}
    ROOMINFO {"identities": ["category/type/name"], "features", "form_types",
              "name", "description", "subject", "occupants", "subjectmod",
              "muc_name", "is_muc"}      DiscoInfo's muc_* properties
    ERROR <label> {"class", "condition", "text"}
    TIMEOUT <what was not seen>
    OK

Exits 0 when every step ran, 1 on any other error, 2 on the overall
timeout.
"""

import json
import os
import sys

# nbxmpp_common.py sits next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import nbxmpp  # noqa: E402
from nbxmpp.namespaces import Namespace  # noqa: E402
from nbxmpp.protocol import JID, Presence  # noqa: E402
from nbxmpp.structs import StanzaHandler  # noqa: E402
from nbxmpp.util import generate_id  # noqa: E402

import nbxmpp_common as common  # noqa: E402
from nbxmpp_common import say  # noqa: E402

WAIT = 10  # seconds for a presence or a message to arrive


def dumps(v):
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


def enum_value(v):
    return None if v is None else v.value


class Run(common.AccountRun):
    """The steps, and what Gajim's handlers saw of the room."""

    def __init__(self, args, loop):
        super().__init__(args, loop)
        self.room = JID.from_string(args.room)
        self.presences = []  # PresenceProperties from the room, in order
        self.messages = []  # MessageProperties of groupchat messages, in order

    def logged_in(self, session):
        super().logged_in(session)
        c = session.client
        # Gajim's MUC handlers run at priority 49, after nbxmpp's (11–16).
        c.register_handler(StanzaHandler(name="presence", callback=self._on_presence, priority=49))
        c.register_handler(StanzaHandler(name="message", callback=self._on_message, typ="groupchat", priority=49))

    def _on_presence(self, _client, _stanza, properties):
        if properties.from_muc and properties.muc_jid == self.room:
            self.presences.append(properties)
            self.poke()

    def _on_message(self, _client, stanza, properties):
        if properties.muc_jid == self.room:
            properties.origin_id_seen = stanza.getOriginID()
            self.messages.append(properties)
            self.poke()

    def until(self, what, items, test, start=0):
        """A waitable: the first of items (a list the handlers fill) from
        the start'th on that test accepts, or None after WAIT seconds
        (TIMEOUT what printed)."""
        found = []

        def check():
            for p in items[start:]:
                if test(p):
                    found.append(p)
                    return True
            return False

        def expired():
            say("TIMEOUT", what)
            return False

        def call(resume):
            self.wait(check, WAIT, expired)(lambda ok: resume(found[0] if ok and found else None))
        return call

    def presence_json(self, p):
        u = p.muc_user
        return {
            "type": "available" if p.type.is_available else p.type.value,
            "codes": sorted(c.value for c in (p.muc_status_codes or ())),
            "affiliation": enum_value(u.affiliation) if u else None,
            "role": enum_value(u.role) if u else None,
            "nick": p.muc_nickname,
            "jid": str(u.jid) if u and u.jid else None,
            "occupant_id": p.occupant_id,
        }

    def occupant(self, nick):
        return JID.from_string("%s/%s" % (self.room, nick))

    def send_groupchat(self, body):
        """A groupchat message as Gajim's build_message_stanza makes one."""
        msg = nbxmpp.Message(to=self.room, body=body, typ="groupchat")
        id_ = generate_id()
        msg.setID(id_)
        msg.setOriginID(id_)
        self.client.send_stanza(msg)
        return id_

    def steps(self):
        a = self.args
        nick = a.nick
        yield self.login("gajim")
        muc = self.client.get_module("MUC")

        # Gajim asks the room's disco#info before joining.
        info = yield self.task(lambda **kw: muc.request_info(self.room, request_vcard=False, **kw))
        if isinstance(info, Exception):
            say("INFO_ERROR", dumps(common.error_json(info)))
        else:
            say("INFO_ERROR", dumps(None))

        # Gajim's _create: an empty muc <x/>.
        pres = Presence(to=self.occupant(nick))
        pres.setTag(Namespace.MUC + " x")
        self.client.send_stanza(pres)
        me = self.occupant(nick)
        p = yield self.until("self-presence", self.presences, lambda p: p.jid == me and p.is_muc_self_presence)
        if p is None:
            return
        say("SELF", "created", dumps(self.presence_json(p)))

        # Gajim's configure_room, with a public room's values.
        config = yield from self.run("config", lambda **kw: muc.request_config(self.room, **kw))
        if config is None or config.form is None:
            say("ERROR", "config", dumps({"class": "no form", "condition": None, "text": ""}))
            return
        form = config.form
        say("CONFIG", dumps({"form_type": form["FORM_TYPE"].value,
                             "fields": sorted(f.var for f in form.iter_fields() if f.var and f.var != "FORM_TYPE")}))
        values = {
            "muc#roomconfig_allowinvites": True,
            "muc#roomconfig_persistentroom": True,
            "muc#roomconfig_moderatedroom": False,
            "muc#roomconfig_enablelogging": True,
            "muc#roomconfig_roomname": a.room_name,
            "muc#roomconfig_roomdesc": a.room_desc,
            "muc#roomconfig_publicroom": True,
            "muc#roomconfig_membersonly": False,
            "muc#roomconfig_whois": "moderators",
            "muc#roomconfig_changesubject": False,
        }
        for var, value in values.items():
            try:
                form[var].value = value
            except KeyError:
                pass
        result = yield from self.run("set-config", lambda **kw: muc.set_config(self.room, form, **kw))
        if result is None:
            return
        say("CONFIGURED")

        # The Go occupant joins, speaks after it got ours.
        bob = self.occupant(a.other_nick)
        p = yield self.until("bob's presence", self.presences, lambda p: p.jid == bob and p.type.is_available)
        if p is not None:
            u = p.muc_user
            say("OCCUPANT", dumps({"nick": p.muc_nickname, "affiliation": enum_value(u.affiliation),
                                   "role": enum_value(u.role), "occupant_id": p.occupant_id}))
        sent_id = self.send_groupchat(a.body)

        def groupchat_json(m):
            return {"nick": m.muc_nickname, "body": m.body, "origin_id": m.origin_id_seen,
                    "occupant_id": m.occupant_id, "delayed": m.user_timestamp is not None}

        m = yield self.until("the reflection of ours", self.messages, lambda m: m.jid == me and m.body == a.body)
        if m is not None:
            say("GROUPCHAT", "reflection", dumps(dict(groupchat_json(m), sent_id=sent_id)))
        m = yield self.until("bob's message", self.messages, lambda m: m.jid == bob and m.body == a.reply)
        if m is not None:
            say("GROUPCHAT", "bob", dumps(groupchat_json(m)))

        muc.set_subject(self.room, a.subject)
        m = yield self.until("the subject", self.messages, lambda m: m.is_muc_subject and m.muc_subject.text == a.subject)
        if m is not None:
            say("SUBJECT", dumps({"text": m.muc_subject.text, "author": m.muc_subject.author}))

        disco = self.client.get_module("Discovery")
        info = yield from self.run("roominfo", lambda **kw: disco.disco_info(self.room, **kw))
        if info is not None:
            form_types = []
            for f in info.dataforms:
                try:
                    form_types.append(f["FORM_TYPE"].value)
                except KeyError:
                    form_types.append(None)
            say("ROOMINFO", dumps({
                "identities": ["%s/%s/%s" % (i.category, i.type, i.name) for i in info.identities],
                "features": sorted(info.features),
                "form_types": form_types,
                "name": info.muc_room_name,
                "description": info.muc_description,
                "subject": info.muc_subject,
                "occupants": info.muc_users,
                "subjectmod": info.muc_subjectmod,
                "muc_name": info.muc_name,
                "is_muc": info.is_muc,
            }))

        # Gajim's leave.
        left = len(self.presences)
        self.client.send_stanza(Presence(to=me, typ="unavailable"))
        p = yield self.until("the self-presence of leaving", self.presences,
                             lambda p: p.jid == me and p.type.is_unavailable, start=left)
        if p is not None:
            say("SELF", "left", dumps(self.presence_json(p)))


def main():
    p = common.parser(__doc__)
    p.add_argument("--room", required=True)
    p.add_argument("--nick", required=True)
    p.add_argument("--other-nick", required=True, help="the Go occupant's nickname")
    p.add_argument("--body", required=True, help="the message sent")
    p.add_argument("--reply", required=True, help="the Go occupant's answer")
    p.add_argument("--subject", required=True)
    p.add_argument("--room-name", required=True)
    p.add_argument("--room-desc", required=True)
    common.main(Run, p.parse_args())


if __name__ == "__main__":
    main()
