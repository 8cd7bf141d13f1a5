#!/usr/bin/python3
"""An administrator runs slixmpp's XEP-0133 helpers against adhocd.

Run by interop/xep0133_test.go with Debian's /usr/bin/python3 and
python3-slixmpp. One client logs in as an administrator as in common.py:
over STARTTLS with SCRAM (never PLAIN), trusting only the server's
self-signed certificate and checking the host name "localhost" while the TCP
connection goes to the address given on the command line.

It then calls every helper of slixmpp's xep_0133 plugin except restart and
shutdown, which would stop the server under the Go test (adhocd's own tests
cover them). slixmpp 1.8.3 makes one helper per name in XEP_0133.commands,
each a thin wrapper around xep_0050's start_command: the session dict's
'next' handler gets the first answer; when it is a form, the script fills it
in and completes the command; 'error' gets an error IQ. The script refuses to
run if the plugin has a helper it does not know, so a new slixmpp cannot add
one untested.

The values to submit come from the command line; the script only reports
what came back, and the Go test checks the server's state. Lines on stdout:

    HELPER <name>              every helper the plugin has
    MECHANISM <role> <mech>    the SASL mechanism the client logged in with
    AUTH_FAILED <role> <mech> <condition>
    COMMAND <node>             each command the server lists (disco#items)
    RESULT <helper> <json>     a command that completed (status, notes, the
                               form first answered, the result forms)
    ERROR <helper> <json>      a command answered with an error IQ
    OK

A command that fails is not a script failure: the Go test decides which
helper must succeed and which must fail. Exits 0 when every helper was run,
1 on any other error and 2 on the overall timeout.
"""

import asyncio
import json
import os
import sys

from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.plugins.xep_0133 import XEP_0133

# common.py sits next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import say  # noqa: E402

NS_DATA = "jabber:x:data"
NS_ROSTER = "jabber:iq:roster"
NS_ADMIN = "http://jabber.org/protocol/admin"
# Helpers that restart or stop the server: never called here.
SKIPPED = {"restart", "shutdown"}
COMMAND_TIMEOUT = 10


def form_fields(x):
    """A data form's fields as {var: [value, ...]}, read from the XML."""
    out = {}
    for f in x.findall("{%s}field" % NS_DATA):
        out[f.get("var", "")] = [v.text or "" for v in f.findall("{%s}value" % NS_DATA)]
    return out


def roster_items(x):
    """The items of a jabber:iq:roster query embedded in a data form."""
    items = []
    for q in x.findall("{%s}query" % NS_ROSTER):
        for it in q.findall("{%s}item" % NS_ROSTER):
            items.append({
                "jid": it.get("jid", ""),
                "name": it.get("name", ""),
                "subscription": it.get("subscription", ""),
                "groups": [g.text or "" for g in it.findall("{%s}group" % NS_ROSTER)],
            })
    return items


class Admin(common.Client):
    """The administrator's client."""

    def __init__(self, jid, password, cafile):
        super().__init__("admin", jid, password, cafile,
                         plugins=("xep_0030", "xep_0004", "xep_0050", "xep_0133"))

    async def command(self, helper, values=None):
        """Run one xep_0133 helper; submit values if it answers with a form.

        Prints RESULT or ERROR and returns the decoded record.
        """
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        record = {"status": "", "notes": [], "initial": None, "forms": []}

        def settle(kind, value):
            if not done.done():
                done.set_result((kind, value))

        def on_error(iq, session):
            # The caller ends a session that failed (xep_0050 keeps it
            # otherwise, under "client:" + the answer's sessionid, which is
            # empty when execute itself fails: the next such failure would
            # find this session and call its handler instead of its own).
            self["xep_0050"].terminate_command(session)
            err = iq["error"]
            settle("ERROR", {"condition": err["condition"], "type": err["type"], "text": err["text"]})

        def on_next(iq, session):
            try:
                cmd = iq["command"]
                forms = cmd.xml.findall("{%s}x" % NS_DATA)
                if cmd["status"] == "executing":
                    if record["initial"] is not None or not forms:
                        raise RuntimeError("%s: unexpected answer %s" % (helper, iq))
                    record["initial"] = form_fields(forms[0])
                    if values is None:
                        raise RuntimeError("%s: the server asked for a form the test has no values for" % helper)
                    answer = self["xep_0004"].make_form(ftype="submit")
                    form_type = record["initial"].get("FORM_TYPE", [NS_ADMIN])
                    answer.add_field(var="FORM_TYPE", ftype="hidden", value=form_type[0])
                    for var, val in values.items():
                        answer.add_field(var=var, value=val)
                    session["payload"] = answer
                    session["next"] = on_next
                    session["error"] = on_error
                    self["xep_0050"].complete_command(session)
                    return
                record["status"] = cmd["status"]
                record["notes"] = [list(n) for n in cmd["notes"]]
                for x in forms:
                    record["forms"].append({
                        "type": x.get("type", ""),
                        "fields": form_fields(x),
                        "roster": roster_items(x),
                    })
                settle("RESULT", record)
            except Exception as e:  # noqa: BLE001 - reported through the future
                if not done.done():
                    done.set_exception(e)

        session = {"next": on_next, "error": on_error}
        getattr(self["xep_0133"], helper)(session=session)
        try:
            kind, value = await asyncio.wait_for(done, COMMAND_TIMEOUT)
        except asyncio.TimeoutError:
            raise RuntimeError("%s: no answer within %ds" % (helper, COMMAND_TIMEOUT)) from None
        say(kind, helper, json.dumps(value, sort_keys=True))
        return kind, value


def quiet_unretrieved_iq_errors(loop, context):
    """Drop asyncio's report of a failed IQ future nobody awaited.

    xep_0050's start_command sends with a callback and drops the future
    iq.send returns, so every command that fails logs "Future exception was
    never retrieved" although the session's error handler got the error.
    Anything else goes to asyncio's default handler.
    """
    if isinstance(context.get("exception"), IqError) and "never retrieved" in context.get("message", ""):
        return
    loop.default_exception_handler(context)


async def run(args):
    asyncio.get_running_loop().set_exception_handler(quiet_unretrieved_iq_errors)
    helpers = sorted(c.replace("-", "_") for c in XEP_0133.commands)
    for h in helpers:
        say("HELPER", h)

    client = Admin(args.jid, args.password, args.cafile)
    await client.login(args.host, args.port)

    # The plugin's own get_commands: disco#items of the commands node.
    try:
        items = await client["xep_0133"].get_commands(timeout=COMMAND_TIMEOUT)
    except (IqError, IqTimeout) as e:
        raise RuntimeError("get_commands: %s" % e) from e
    for _jid, node, _name in items["disco_items"]["items"]:
        say("COMMAND", node)

    def jids(*js):
        return list(js)

    # (helper, values to submit at its form or None when it has none), in
    # the order that gives each step the state it needs: the welcome message
    # is set, deleted, and set again before the last account is made; the
    # counts and lists come last, after every change.
    plan = [
        ("add_user", {"accountjid": args.plain_jid, "password": args.plain_password,
                      "password-verify": args.plain_password}),
        ("set_welcome", {"welcome": args.welcome_old}),
        ("delete_welcome", None),
        ("set_welcome", {"welcome": args.welcome}),
        ("add_user", {"accountjid": args.new_jid, "password": args.new_password,
                      "password-verify": args.new_password}),
        ("delete_user", {"accountjids": jids(args.delete_jid)}),
        ("disable_user", {"accountjids": jids(args.disable_jid, args.toggle_jid)}),
        ("reenable_user", {"accountjids": jids(args.toggle_jid)}),
        ("end_user_session", {"accountjids": jids(args.kick_jid)}),
        ("get_user_password", {"accountjid": args.change_jid}),
        ("change_user_password", {"accountjid": args.change_jid, "password": args.change_password}),
        ("get_user_roster", {"accountjids": jids(args.info_jid)}),
        ("get_user_lastlogin", {"accountjids": jids(args.info_jid, args.never_jid)}),
        ("user_stats", {"accountjid": args.info_jid}),
        ("announce", {"announcement": args.announcement}),
        ("set_motd", {"motd": args.motd}),
        ("edit_motd", {"motd": args.motd_edited}),
        ("delete_motd", None),
        ("edit_blacklist", {"blacklistjids": args.blacklist}),
        ("edit_whitelist", {"whitelistjids": args.whitelist}),
        ("edit_admin", {"adminjids": args.admin}),
        ("get_registered_users_num", None),
        ("get_disabled_users_num", None),
        ("get_online_users_num", None),
        ("get_active_users_num", None),
        ("get_idle_users_num", None),
        ("get_registered_users_list", {"max_items": "none"}),
        ("get_disabled_users_list", {"max_items": "none"}),
        ("get_online_users_list", {"max_items": "none"}),
        ("get_online_users", {"max_items": "none"}),
        ("get_active_users", {"max_items": "none"}),
        ("get_idle_userslist", {"max_items": "none"}),
    ]
    planned = {h for h, _ in plan}
    missing = set(helpers) - planned - SKIPPED
    unknown = planned - set(helpers)
    if missing or unknown:
        raise RuntimeError("helpers not covered: %s; not in the plugin: %s" % (sorted(missing), sorted(unknown)))

    for helper, values in plan:
        await client.command(helper, values)

    await client.logout()
    say("OK")


def main():
    p = common.parser(__doc__, jid_help="the administrator", timeout=45.0)
    p.add_argument("--new-jid", required=True, help="add_user, after the welcome message is set")
    p.add_argument("--new-password", required=True)
    p.add_argument("--plain-jid", required=True, help="add_user, before any welcome message")
    p.add_argument("--plain-password", required=True)
    p.add_argument("--delete-jid", required=True)
    p.add_argument("--disable-jid", required=True, help="disable_user")
    p.add_argument("--toggle-jid", required=True, help="disable_user, then reenable_user")
    p.add_argument("--kick-jid", required=True, help="end_user_session")
    p.add_argument("--change-jid", required=True, help="change_user_password (and get_user_password)")
    p.add_argument("--change-password", required=True)
    p.add_argument("--info-jid", required=True, help="get_user_roster, get_user_lastlogin, user_stats")
    p.add_argument("--never-jid", required=True, help="get_user_lastlogin of an account that never logged in")
    p.add_argument("--announcement", required=True)
    p.add_argument("--motd", required=True)
    p.add_argument("--motd-edited", required=True)
    p.add_argument("--welcome-old", required=True)
    p.add_argument("--welcome", required=True)
    p.add_argument("--blacklist", action="append", default=[])
    p.add_argument("--whitelist", action="append", default=[])
    p.add_argument("--admin", action="append", default=[], help="the whole new admin list")
    args = p.parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
