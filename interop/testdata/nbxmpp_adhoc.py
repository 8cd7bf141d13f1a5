"""Run adhocd's commands through nbxmpp's AdHoc module, the way Gajim does.

Gajim's library, nbxmpp (Debian's python3-nbxmpp 4.2.2), on a GLib main
loop: the client connects to --host:--port with STARTTLS (nbxmpp's custom
host, as Gajim's "custom host" account setting sets it), accepts the
server's certificate only when it is the one in --cafile (nbxmpp's accepted
certificates, as Gajim's certificate store passes them; any other TLS error
still fails), logs in with nbxmpp's default mechanisms (SCRAM-SHA-512,
SCRAM-SHA-256, SCRAM-SHA-1, PLAIN; nbxmpp never uses -PLUS) and sends
presence. Then, through client.get_module('AdHoc') as Gajim's command
window (gajim/gtk/adhoc.py) calls it:

  * request_command_list(--server): the command list;
  * add-user: execute, fill in the form as Gajim's data form widget does
    (the form the server sent, its values set, type changed to submit) and
    send it with the form's default action, the button Gajim makes the
    default (Enter in the form presses it);
  * get-registered-users-num: execute (one stage);
  * the wizard: execute, next with the first form, prev (no form, as Gajim
    sends it), next with the form shown again, next, complete; then a second
    session is canceled.

Lines on stdout (JSON after the label):

    LOGIN {"jid", "mechanism", "tls_version"}
    COMMANDS [{"jid", "node", "name"}, ...]
    SENT <label> {"action", "form": <form sent or null>}
    RESPONSE <label> <what nbxmpp parsed of the reply>
    ERROR <label> {"class", "condition", "text"}
    OK

A command that fails is reported, not fatal; a failed command list is
reported and the commands are then built from --server and their nodes, so
the other steps still run. Exits 0 when every step ran, 1 on any other
error, 2 on the overall timeout.
"""

import json
import os
import sys

# nbxmpp_common.py sits next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nbxmpp.const import AdHocAction  # noqa: E402
from nbxmpp.modules import dataforms  # noqa: E402
from nbxmpp.structs import AdHocCommand  # noqa: E402

import nbxmpp_common as common  # noqa: E402
from nbxmpp_common import say  # noqa: E402

NS_ADMIN = "http://jabber.org/protocol/admin"
ADD_USER = NS_ADMIN + "#add-user"
USERS_NUM = NS_ADMIN + "#get-registered-users-num"
WIZARD = "urn:adhocd:demo:wizard"


def form_json(node):
    """What nbxmpp's data forms make of a jabber:x:data element."""
    if node is None:
        return None
    form = dataforms.extend_form(node=node)
    fields = []
    for f in form.iter_fields():
        fields.append({
            "var": f.var or "",
            "type": f.type_,
            "label": f.getAttr("label") or "",
            "required": bool(f.required),
            "values": [v.getData() for v in f.getTags("value")],
            "options": [value for _label, value in f.options] if hasattr(f, "options") else [],
        })
    return {
        "type": form.type_ or "",
        "title": form.title or "",
        "instructions": form.instructions or "",
        "fields": fields,
    }


def command_json(cmd):
    """The parts of an AdHocCommand nbxmpp's execute_command parsed."""
    return {
        "jid": str(cmd.jid),
        "node": cmd.node,
        "sessionid": cmd.sessionid,
        "status": cmd.status.value if cmd.status is not None else None,
        "actions": sorted(a.value for a in cmd.actions or ()),
        "default": cmd.default.value if cmd.default is not None else None,
        "notes": [[n.type.value, n.text] for n in cmd.notes or ()],
        "form": form_json(cmd.data),
    }


def submit_form(stage, values):
    """The form Gajim's DataFormWidget submits: the stage's own form (with
    its labels, options and other fields), the values the user typed set on
    its fields, and its type changed to submit."""
    form = dataforms.extend_form(node=stage.data)
    for var, value in values.items():
        field = form.vars.get(var)
        if field is None:
            raise RuntimeError("%s: the form has no field %s" % (stage.node, var))
        if isinstance(value, list):
            field.values = value
        else:
            field.value = value
    form.type_ = "submit"
    return form


class Run(common.AccountRun):
    """The steps."""

    def login_json(self, client):
        info = super().login_json(client)
        # GLib's name of it, such as tls-1-3.
        info["tls_version"] = getattr(client.tls_version, "value_nick", None)
        return info

    def _execute(self, label, cmd, action, form=None):
        """Send one command request; yields the task, returns the stage or
        None when it failed (reported as ERROR)."""
        say("SENT", label, json.dumps({"action": action.value, "form": form_json(form)}))
        adhoc = self.client.get_module("AdHoc")
        result = yield from self.run(label, lambda **kw: adhoc.execute_command(
            cmd, action=action, dataform=form, **kw))
        if result is not None:
            say("RESPONSE", label, json.dumps(command_json(result)))
        return result

    def _submit(self, label, stage, values):
        """Submit values at stage with its default action, as Enter does in
        Gajim's form; yields the task and returns the next stage."""
        if stage is None or stage.data is None or stage.default is None:
            raise RuntimeError("%s: no form to submit" % label)
        return (yield from self._execute(label, stage, stage.default, submit_form(stage, values)))

    def commands(self, jid, nodes):
        """Request jid's command list (COMMANDS); yields the task and
        returns a function that finds a listed command by its node. When
        the request fails (reported as ERROR) the commands are built from
        jid and nodes instead, so that the steps after it still run."""
        adhoc = self.client.get_module("AdHoc")
        listed = yield from self.run("commands", lambda **kw: adhoc.request_command_list(jid, **kw))
        if listed is None:
            listed = [AdHocCommand(jid=jid, node=n, name=None) for n in nodes]
        else:
            say("COMMANDS", json.dumps([{"jid": str(c.jid), "node": c.node, "name": c.name} for c in listed]))

        def command(node):
            for c in listed:
                if c.node == node:
                    return c
            raise RuntimeError("the command list has no %s" % node)
        return command

    def steps(self):
        yield self.login("nbxmpp-interop")
        a = self.args
        command = yield from self.commands(a.server, (ADD_USER, USERS_NUM, WIZARD))

        # add-user: the form, then the submission.
        stage = yield from self._execute("add-user-form", command(ADD_USER), AdHocAction.EXECUTE)
        if stage is not None:
            yield from self._submit("add-user-done", stage, {
                "accountjid": a.new_jid, "password": a.new_password, "password-verify": a.new_password})

        # get-registered-users-num: one stage.
        yield from self._execute("users-num", command(USERS_NUM), AdHocAction.EXECUTE)

        # The wizard: next, prev, next again, next, complete.
        wizard = command(WIZARD)
        s1 = yield from self._execute("stage1", wizard, AdHocAction.EXECUTE)
        if s1 is not None:
            s2 = yield from self._submit("stage2", s1, {"name": a.name, "color": a.color})
            # Gajim's Previous button sends no form.
            s1b = yield from self._execute("stage1-again", s2, AdHocAction.PREV)
            # Next with the form as it came back, values untouched.
            s2b = yield from self._submit("stage2-again", s1b, {})
            s3 = yield from self._submit("stage3", s2b, {"contact": a.contact, "notify": True})
            yield from self._submit("completed", s3, {"comment": a.comment})

        # A second session, canceled at its first stage (Gajim's Cancel).
        c1 = yield from self._execute("cancel-stage1", wizard, AdHocAction.EXECUTE)
        if c1 is not None:
            yield from self._execute("canceled", c1, AdHocAction.CANCEL)


def main():
    p = common.parser(__doc__, jid_help="the administrator")
    p.add_argument("--server", required=True, help="the JID whose commands are run")
    p.add_argument("--new-jid", required=True, help="add-user")
    p.add_argument("--new-password", required=True)
    p.add_argument("--name", required=True, help="the wizard's first stage")
    p.add_argument("--color", required=True)
    p.add_argument("--contact", required=True, help="the wizard's second stage")
    p.add_argument("--comment", required=True, help="the wizard's last stage")
    common.main(Run, p.parse_args())


if __name__ == "__main__":
    main()
