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

import argparse
import json
import logging
import sys
import traceback

from gi.repository import Gio, GLib

from nbxmpp.client import Client
from nbxmpp.const import AdHocAction, ConnectionProtocol, ConnectionType
from nbxmpp.errors import BaseError, StanzaError
from nbxmpp.modules import dataforms
from nbxmpp.protocol import JID, Presence
from nbxmpp.structs import AdHocCommand

NS_ADMIN = "http://jabber.org/protocol/admin"
ADD_USER = NS_ADMIN + "#add-user"
USERS_NUM = NS_ADMIN + "#get-registered-users-num"
WIZARD = "urn:adhocd:demo:wizard"
TASK_TIMEOUT = 10  # seconds, for each request


def say(label, *rest):
    """Print one result line for the Go test, at once."""
    print(label, *rest, flush=True)


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


def error_json(error):
    return {
        "class": type(error).__name__,
        "condition": getattr(error, "condition", None) if isinstance(error, StanzaError) else None,
        "text": str(error),
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


class Run:
    """The steps, as a generator driven by the tasks' callbacks."""

    def __init__(self, args, loop):
        self.args = args
        self.loop = loop
        self.status = 1
        self.client = Client()
        self.client.set_username(JID.from_string(args.jid).localpart)
        self.client.set_domain(JID.from_string(args.jid).domain)
        self.client.set_resource("nbxmpp-interop")
        self.client.set_password(args.password)
        # Gajim's custom host: "host:port", TCP, the connection type chosen.
        self.client.set_custom_host("%s:%d" % (args.host, args.port),
                                    ConnectionProtocol.TCP, ConnectionType.START_TLS)
        # Gajim passes the certificates the user accepted before; nbxmpp then
        # forgives UNKNOWN_CA for exactly those, and no other error.
        self.client.set_accepted_certificates([Gio.TlsCertificate.new_from_file(args.cafile)])
        self.client.subscribe("connected", self._on_connected)
        self.client.subscribe("connection-failed", self._on_failed)
        self.client.subscribe("disconnected", self._on_disconnected)
        if args.debug:
            self.client.subscribe("stanza-sent", lambda _c, _s, data: print("SENT:", data, file=sys.stderr))
            self.client.subscribe("stanza-received", lambda _c, _s, data: print("RECV:", data, file=sys.stderr))
        self.steps = None
        # done: every step ran; finished: the main loop was told to end.
        self.done = False
        self.finished = False

    def start(self):
        self.client.connect()

    def stop(self, status):
        """End the main loop with status, unless it ended already."""
        if self.finished:
            return
        self.finished = True
        self.status = status
        self.loop.quit()

    def _on_failed(self, client, _signal):
        print("FAIL connection failed: %s" % (client.get_error(),), file=sys.stderr, flush=True)
        self.stop(1)

    def _on_disconnected(self, client, _signal):
        if self.done:
            self.stop(0)
            return
        print("FAIL disconnected: %s" % (client.get_error(),), file=sys.stderr, flush=True)
        self.stop(1)

    def _on_connected(self, client, _signal):
        mech = getattr(getattr(client, "_sasl", None), "_mechanism", None)
        say("LOGIN", json.dumps({
            "jid": str(client.get_bound_jid()),
            "mechanism": mech.name if mech is not None else None,
            # GLib's name of it, such as tls-1-3.
            "tls_version": getattr(client.tls_version, "value_nick", None),
        }))
        client.send_stanza(Presence())
        self.steps = self._steps()
        self._advance(None)

    def _advance(self, value):
        try:
            task = self.steps.send(value)
        except StopIteration:
            say("OK")
            # Close the stream and wait for the server's end of it, or
            # give up waiting after a while: the steps are done anyway.
            self.done = True
            self.client.disconnect()
            GLib.timeout_add_seconds(5, lambda: self.stop(0) and False)
            return
        except Exception as e:  # noqa: BLE001 - any failure ends the run
            traceback.print_exc()
            print("FAIL %s: %s" % (type(e).__name__, e), file=sys.stderr, flush=True)
            self.stop(1)
            return
        task.add_done_callback(self._on_task_done, weak=False)

    def _on_task_done(self, task):
        try:
            result = task.finish()
        except BaseError as e:
            result = e
        GLib.idle_add(lambda: self._advance(result) and False)

    def _execute(self, label, cmd, action, form=None):
        """Send one command request; yields the task, returns the stage or
        None when it failed (reported as ERROR)."""
        say("SENT", label, json.dumps({"action": action.value, "form": form_json(form)}))
        result = yield self.client.get_module("AdHoc").execute_command(
            cmd, action=action, dataform=form, timeout=TASK_TIMEOUT)
        if isinstance(result, BaseError):
            say("ERROR", label, json.dumps(error_json(result)))
            return None
        say("RESPONSE", label, json.dumps(command_json(result)))
        return result

    def _submit(self, label, stage, values):
        """Submit values at stage with its default action, as Enter does in
        Gajim's form; yields the task and returns the next stage."""
        if stage is None or stage.data is None or stage.default is None:
            raise RuntimeError("%s: no form to submit" % label)
        return (yield from self._execute(label, stage, stage.default, submit_form(stage, values)))

    def _steps(self):
        a = self.args
        server = a.server
        listed = yield self.client.get_module("AdHoc").request_command_list(server, timeout=TASK_TIMEOUT)
        if isinstance(listed, BaseError):
            say("ERROR", "commands", json.dumps(error_json(listed)))
            listed = [AdHocCommand(jid=server, node=n, name=None) for n in (ADD_USER, USERS_NUM, WIZARD)]
        else:
            say("COMMANDS", json.dumps([{"jid": str(c.jid), "node": c.node, "name": c.name} for c in listed]))

        def command(node):
            for c in listed:
                if c.node == node:
                    return c
            raise RuntimeError("the command list has no %s" % node)

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
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--jid", required=True, help="the administrator")
    p.add_argument("--password", required=True)
    p.add_argument("--server", required=True, help="the JID whose commands are run")
    p.add_argument("--new-jid", required=True, help="add-user")
    p.add_argument("--new-password", required=True)
    p.add_argument("--name", required=True, help="the wizard's first stage")
    p.add_argument("--color", required=True)
    p.add_argument("--contact", required=True, help="the wizard's second stage")
    p.add_argument("--comment", required=True, help="the wizard's last stage")
    p.add_argument("--timeout", type=float, default=40.0)
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
