#!/usr/bin/python3
"""slixmpp's XEP-0050 requester runs adhocd's three-stage test wizard.

Run by interop/adhoc_test.go (TestSlixmppRunsWizard) with Debian's
/usr/bin/python3 and python3-slixmpp. The client logs in as in common.py and
uses only the xep_0050 plugin's requester API: get_commands on the server
JID, then start_command, continue_command (direction 'next', and 'prev'
once), complete_command, and on a second session cancel_command. Form values
are sent the slixmpp way: session['payload'] is an xep_0004 form of type
'submit' when the command is continued.

The script decides nothing: it prints what slixmpp parsed from every reply
and the Go test checks it. Lines on stdout:

    MECHANISM <role> <SASL mechanism name>
    AUTH_FAILED <role> <SASL mechanism name> <condition>
    COMMANDS <JSON list of {jid, node, name}>
    RESPONSE <label> <JSON description of the <command/> reply>
    OK

Labels, in order: stage1, stage2 (after next), stage1-again (after prev),
stage2-again (after next with the values stage1-again showed), stage3 (after
next), completed (after complete); then cancel-stage1 (a second session) and
canceled (after cancel_command).

Exits 0 once all of that ran, 1 on any error (an IQ error from the server
included) and 2 on the overall timeout.
"""

import asyncio
import json
import os
import sys

# common.py sits next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import say  # noqa: E402

NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_DATA = "jabber:x:data"


class CommandError(Exception):
    """An IQ error in reply to a command request."""


def describe(iq):
    """What slixmpp parsed from a <command/> reply, as plain data."""
    cmd = iq["command"]
    actions_xml = cmd.xml.find("{%s}actions" % NS_COMMANDS)
    out = {
        "node": cmd["node"],
        "sessionid": cmd["sessionid"],
        "status": cmd["status"],
        # slixmpp exposes the allowed actions as a set and has no accessor
        # for the execute attribute: read both from the element as well.
        "actions": sorted(cmd["actions"]),
        "action_order": [] if actions_xml is None else [el.tag.split("}")[1] for el in actions_xml],
        "execute": None if actions_xml is None else actions_xml.get("execute"),
        "notes": [[t, text or ""] for t, text in cmd["notes"]],
        "forms": [],
    }
    # iq['command']['form'] would create an empty form when there is none.
    if cmd.xml.find("{%s}x" % NS_DATA) is not None:
        form = cmd["form"]
        fields = []
        for var, field in form.get_fields().items():
            value = field.get_value(convert=False)
            if value is None:
                values = []
            elif isinstance(value, list):
                values = value
            else:
                values = [value]
            fields.append({
                "var": var,
                "type": field["type"],
                "label": field["label"],
                "required": field["required"],
                "values": values,
                "options": [o["value"] for o in field.get_options()],
            })
        out["forms"].append({
            "type": form["type"],
            "title": form["title"],
            "instructions": form["instructions"],
            "fields": fields,
        })
    return out


class Flow:
    """One command session driven through slixmpp's callback API, with each
    request awaited until the 'next' or 'error' callback of the session
    dictionary fires."""

    def __init__(self, client, jid, node):
        self.client = client
        self.adhoc = client["xep_0050"]
        self.jid = jid
        self.node = node
        self.session = {}

    def _arm(self):
        fut = asyncio.get_running_loop().create_future()

        def on_next(iq, _session):
            if not fut.done():
                fut.set_result(iq)

        def on_error(iq, _session):
            if not fut.done():
                fut.set_exception(CommandError("%s: %s %s" % (iq["error"]["type"], iq["error"]["condition"], iq["error"]["text"])))

        self.session["next"] = on_next
        self.session["error"] = on_error
        return fut

    async def start(self):
        fut = self._arm()
        self.adhoc.start_command(self.jid, self.node, self.session)
        return await fut

    async def cont(self, direction, payload):
        self.session["payload"] = payload
        fut = self._arm()
        self.adhoc.continue_command(self.session, direction=direction)
        return await fut

    async def complete(self, payload):
        self.session["payload"] = payload
        fut = self._arm()
        self.adhoc.complete_command(self.session)
        return await fut

    async def cancel(self):
        self.session["payload"] = None
        fut = self._arm()
        self.adhoc.cancel_command(self.session)
        return await fut


def submit(client, fields):
    """A data form of type submit: fields maps var to (type, value)."""
    form = client["xep_0004"].make_form(ftype="submit")
    for var, (ftype, value) in fields.items():
        # The type only steers how slixmpp splits the value into <value/>
        # elements (text-multi: one per line); a submit form drops it.
        form.add_field(var=var, ftype=ftype, value=value)
    return form


def report(label, iq):
    d = describe(iq)
    say("RESPONSE", label, json.dumps(d, sort_keys=True))
    return d


async def run(args):
    c = common.Client("requester", args.jid, args.password, args.cafile,
                      plugins=("xep_0030", "xep_0004", "xep_0050"))
    await c.login(args.host, args.port)

    iq = await c["xep_0050"].get_commands(jid=args.server)
    items = [{"jid": str(j), "node": n, "name": name} for j, n, name in iq["disco_items"]["items"]]
    say("COMMANDS", json.dumps(items, sort_keys=True))

    w = Flow(c, args.server, args.node)
    report("stage1", await w.start())
    stage1 = {"name": ("text-single", args.name), "color": ("list-single", args.color)}
    report("stage2", await w.cont("next", submit(c, stage1)))
    again = report("stage1-again", await w.cont("prev", None))
    # Submit what the form came back with, so that the pre-filled values are
    # the ones the wizard goes on with.
    shown = {f["var"]: (f["type"], f["values"][0] if f["values"] else "") for f in again["forms"][0]["fields"]} \
        if again["forms"] else {}
    report("stage2-again", await w.cont("next", submit(c, shown)))
    stage2 = {"contact": ("jid-single", args.contact), "notify": ("boolean", args.notify)}
    report("stage3", await w.cont("next", submit(c, stage2)))
    stage3 = {"comment": ("text-multi", args.comment)}
    report("completed", await w.complete(submit(c, stage3)))

    x = Flow(c, args.server, args.node)
    report("cancel-stage1", await x.start())
    report("canceled", await x.cancel())

    await c.logout()
    say("OK")


def main():
    p = common.parser(__doc__)
    p.add_argument("--server", required=True, help="JID of the command provider (the server)")
    p.add_argument("--node", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--color", required=True)
    p.add_argument("--contact", required=True)
    p.add_argument("--notify", required=True, help="boolean value to send, as text")
    p.add_argument("--comment", required=True, help="may hold newlines: one <value/> per line")
    args = p.parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
