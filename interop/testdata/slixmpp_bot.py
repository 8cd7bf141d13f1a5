"""A slixmpp bot of one of the two kinds people write, as an administrator.

slixmpp 1.8.3 (Debian's python3-slixmpp) with its default SASL choice, which
tries SCRAM-*-PLUS first when the server offers it (common.Client only rules
out PLAIN). --kind says how the bot reacts to SASL failures, the way bot
examples and tutorials do:

  failed-all-auth  disconnects on failed_all_auth: a single failure is left
                   to slixmpp, which tries the next mechanism;
  failed-auth      disconnects on failed_auth, at the first failure.

Once logged in the bot runs one admin command (XEP-0133
get-online-users-num at --server, through xep_0050's send_command) and
logs out. Lines on stdout, besides common.Client's MECHANISM, AUTH_FAILED
and AUTH_FAILED_TEXT:

    GAVE_UP <event>          the bot's own handler disconnected
    OFFERED <mech> ...       the SASL mechanisms the server offered, sorted
    LOGIN_FAILED <json>      the session did not start: why
    COMMAND <json>           the command's status, notes and result fields
    OK

Exits 0 when the bot either logged in and ran the command or could not log
in (the Go test decides which was expected), 1 on any other error and 2 on
the overall timeout.
"""

import json
import os
import sys

# common.py sits next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import say  # noqa: E402

NS_DATA = "jabber:x:data"
ONLINE_NUM = "http://jabber.org/protocol/admin#get-online-users-num"
COMMAND_TIMEOUT = 10


class Bot(common.Client):
    """The bot: common.Client plus the SASL failure handler of its kind."""

    def __init__(self, kind, jid, password, cafile):
        super().__init__("bot", jid, password, cafile, plugins=("xep_0030", "xep_0004", "xep_0050"))
        self.kind = kind
        if kind == "failed-auth":
            self.add_event_handler("failed_auth", self._give_up("failed_auth"))
        else:
            self.add_event_handler("failed_all_auth", self._give_up("failed_all_auth"))

    def _give_up(self, event):
        def handler(_stanza):
            say("GAVE_UP", event)
            self.disconnect()
        return handler

    def offered(self):
        """The mechanisms of the server's last <mechanisms/>, sorted."""
        return sorted(getattr(self["feature_mechanisms"], "mech_list", ()) or ())


async def run(args):
    bot = Bot(args.kind, args.jid, args.password, args.cafile)
    try:
        await bot.login(args.host, args.port)
    except RuntimeError as e:
        say("OFFERED", *bot.offered())
        say("LOGIN_FAILED", json.dumps(str(e)))
        return
    say("OFFERED", *bot.offered())

    iq = await bot["xep_0050"].send_command(args.server, ONLINE_NUM, timeout=COMMAND_TIMEOUT)
    cmd = iq["command"]
    fields = {}
    for x in cmd.xml.findall("{%s}x" % NS_DATA):
        for f in x.findall("{%s}field" % NS_DATA):
            fields[f.get("var", "")] = [v.text or "" for v in f.findall("{%s}value" % NS_DATA)]
    say("COMMAND", json.dumps({
        "status": cmd["status"],
        "notes": [list(n) for n in cmd["notes"]],
        "fields": fields,
    }, sort_keys=True))

    await bot.logout()
    say("OK")


def main():
    p = common.parser(__doc__, jid_help="the bot, an administrator")
    p.add_argument("--kind", required=True, choices=("failed-all-auth", "failed-auth"))
    p.add_argument("--server", required=True, help="the JID whose admin command is run")
    args = p.parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
