#!/usr/bin/python3
"""Run the group chat service's administration commands through nbxmpp.

Gajim's library, nbxmpp (Debian's python3-nbxmpp 4.2.2), on a GLib main
loop, logged in as nbxmpp_adhoc.py logs in (an administrator of the
server). Through client.get_module('AdHoc'), as Gajim's command window calls
it on the service's JID (--service):

  * request_command_list(--service): the service's command list;
  * list-rooms: execute (one stage, a multi-item result);
  * destroy-room: execute, then the form filled in as Gajim's data form
    widget does (--room, --reason, --venue) and sent with the form's
    default action.

Lines on stdout (JSON after the label), besides nbxmpp_adhoc.py's LOGIN,
SENT and ERROR:

    COMMANDS [{"jid", "node", "name"}, ...]
    RESPONSE <label> <what nbxmpp parsed of the reply, as nbxmpp_adhoc.py
                      prints it; for a multi-item result, "reported": the
                      vars of its columns and "items": its rows as
                      {var: [value, ...]}>
    OK

A command that fails is reported, not fatal. Exits 0 when every step ran,
1 on any other error, 2 on the overall timeout.
"""

import os
import sys

# The shared modules sit next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nbxmpp.const import AdHocAction  # noqa: E402
from nbxmpp.modules import dataforms  # noqa: E402

import nbxmpp_adhoc  # noqa: E402
import nbxmpp_common as common  # noqa: E402

NS_MUC_COMMANDS = "urn:adhocd:muc"
LIST_ROOMS = NS_MUC_COMMANDS + "#list-rooms"
DESTROY_ROOM = NS_MUC_COMMANDS + "#destroy-room"


def command_json(cmd):
    """nbxmpp_adhoc.py's description of a reply; for a multi-item result
    form (which nbxmpp reads as a MultipleDataForm, whose records Gajim
    shows as a table) its title and type, no fields, and the columns and
    rows read from its XML."""
    data = cmd.data
    if data is None or data.getTag("reported") is None:
        return _command_json(cmd)
    d = _command_json(cmd._replace(data=None))
    form = dataforms.extend_form(node=data)
    d["form"] = {"type": form.type_ or "", "title": form.title or "", "instructions": form.instructions or "", "fields": []}
    d["reported"] = [f.getAttr("var") for f in data.getTag("reported").getTags("field")]
    d["items"] = [{f.getAttr("var"): [v.getData() for v in f.getTags("value")] for f in record.getTags("field")}
                  for record in form.iter_records()]
    return d


# nbxmpp_adhoc.Run's requests print what its command_json says.
_command_json, nbxmpp_adhoc.command_json = nbxmpp_adhoc.command_json, command_json


class Run(nbxmpp_adhoc.Run):
    """The steps, sent and reported as nbxmpp_adhoc.py sends and reports
    them."""

    def steps(self):
        yield self.login("nbxmpp-mucadmin")
        a = self.args
        command = yield from self.commands(a.service, (LIST_ROOMS, DESTROY_ROOM))
        yield from self._execute("list-rooms", command(LIST_ROOMS), AdHocAction.EXECUTE)
        stage = yield from self._execute("destroy-room-form", command(DESTROY_ROOM), AdHocAction.EXECUTE)
        if stage is not None:
            yield from self._submit("destroy-room", stage, {"room": a.room, "reason": a.reason, "venue": a.venue})


def main():
    p = common.parser(__doc__, jid_help="the administrator")
    p.add_argument("--service", required=True, help="the group chat service's JID")
    p.add_argument("--room", required=True, help="the room destroy-room destroys")
    p.add_argument("--reason", required=True)
    p.add_argument("--venue", required=True, help="the alternate venue")
    common.main(Run, p.parse_args())


if __name__ == "__main__":
    main()
