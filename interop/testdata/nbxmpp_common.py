"""Shared parts of the nbxmpp interop scripts.

Gajim's library, nbxmpp (Debian's python3-nbxmpp 4.2.2), on a GLib main
loop. A Session is one nbxmpp Client logged in as Gajim logs in an account
with a custom host: STARTTLS to --host:--port (nbxmpp's custom host, as
Gajim's "custom host" account setting sets it), the server's certificate
accepted only when it is the one in --cafile (nbxmpp's accepted
certificates, as Gajim's certificate store passes them; any other TLS error
still fails), nbxmpp's default SASL mechanisms (SCRAM-SHA-512,
SCRAM-SHA-256, SCRAM-SHA-1, PLAIN; nbxmpp never uses -PLUS).

A Run drives a script's steps: a generator whose every yield is a
waitable, a function that starts something and is given resume, to call
once with the outcome, which the yield then returns. Once the steps are
done it prints OK and logs its sessions out. main() runs it on a GLib main
loop under the overall --timeout and exits 0 when every step ran, 1 on any
other error, 2 on the timeout; a reason goes to stderr as a FAIL line.

Lines on stdout every script prints:

    ERROR <label> {"class", "condition", "text"}    a task that failed
    OK                                              every step ran

Scripts import this module after putting their own folder on sys.path.
"""

import json
import logging
import sys
import traceback

from gi.repository import Gio, GLib

from nbxmpp.client import Client
from nbxmpp.const import ConnectionProtocol, ConnectionType
from nbxmpp.errors import BaseError, StanzaError
from nbxmpp.protocol import JID, Presence

import flags

TASK_TIMEOUT = 10  # seconds, for each request


def say(label, *rest):
    """Print one result line for the Go test, at once."""
    print(label, *rest, flush=True)


def fail(why):
    """Print why the run fails to stderr."""
    print("FAIL %s" % why, file=sys.stderr, flush=True)


def error_json(error, app_condition=False):
    """What an ERROR line says of error: its class, its stanza error
    condition (None for other errors), with app_condition its
    application-specific condition too, and its text."""
    d = {
        "class": type(error).__name__,
        "condition": getattr(error, "condition", None) if isinstance(error, StanzaError) else None,
    }
    if app_condition:
        d["app_condition"] = getattr(error, "app_condition", None)
    d["text"] = str(error)
    return d


def mechanism(client):
    """The name of the SASL mechanism client logged in with, or None."""
    mech = getattr(getattr(client, "_sasl", None), "_mechanism", None)
    return mech.name if mech is not None else None


class Session:
    """One nbxmpp Client of run's, logging in as jid (a string) with
    password and resource; role names it in FAIL and --debug lines where a
    script has several.

    Once logged in it calls run.logged_in(session), then on_connected. When
    its stream ends it calls run.leave() once the steps are done, or else
    on_disconnected if it is set; otherwise the run fails.
    """

    def __init__(self, run, jid, password, resource, role=None):
        a = run.args
        self.run = run
        self.role = role
        self.on_connected = None  # called once, with no arguments
        self.on_disconnected = None  # called once, with no arguments
        self.leaving = False  # Run.leave logged it out
        self.gone = False  # its stream ended
        c = Client()
        j = JID.from_string(jid)
        c.set_username(j.localpart)
        c.set_domain(j.domain)
        c.set_resource(resource)
        c.set_password(password)
        # Gajim's custom host: "host:port", TCP, the connection type chosen.
        c.set_custom_host("%s:%d" % (a.host, a.port), ConnectionProtocol.TCP, ConnectionType.START_TLS)
        # Gajim passes the certificates the user accepted before; nbxmpp then
        # forgives UNKNOWN_CA for exactly those, and no other error.
        c.set_accepted_certificates([Gio.TlsCertificate.new_from_file(a.cafile)])
        c.subscribe("connected", self._on_connected)
        c.subscribe("connection-failed", self._on_failed)
        c.subscribe("disconnected", self._on_disconnected)
        if a.debug:
            who = () if role is None else (role,)
            c.subscribe("stanza-sent", lambda _c, _s, data: print(*who, "SENT:", data, file=sys.stderr))
            c.subscribe("stanza-received", lambda _c, _s, data: print(*who, "RECV:", data, file=sys.stderr))
        self.client = c

    def _fail(self, why):
        fail(why if self.role is None else "%s: %s" % (self.role, why))
        self.run.stop(1)

    def _on_connected(self, client, _signal):
        self.run.logged_in(self)
        cb, self.on_connected = self.on_connected, None
        if cb is not None:
            cb()

    def _on_failed(self, client, _signal):
        self._fail("connection failed: %s" % (client.get_error(),))

    def _on_disconnected(self, client, _signal):
        if self.gone:
            return
        self.gone = True
        if self.run.done:
            self.run.leave()
            return
        if self.on_disconnected is not None:
            cb, self.on_disconnected = self.on_disconnected, None
            cb()
            return
        self._fail("disconnected: %s" % (client.get_error(),))


class Run:
    """A script's steps, as the generator steps() makes them, driven on a
    GLib main loop; args are the parsed flags.

    The steps run from start() on. When they are done the run prints OK,
    sets done and leaves (see leave), giving up waiting for the streams to
    close after 5 seconds; when one raises, the run fails.
    """

    def __init__(self, args, loop):
        self.args = args
        self.loop = loop
        self.status = 1
        self.sessions = []  # every Session made, in order
        self._steps = None
        # done: every step ran; finished: the main loop was told to end.
        self.done = False
        self.finished = False
        self.waiter = None  # a check run at every poke(), while waiting
        self.callback = None  # the task callback pending

    def steps(self):
        """The steps, a generator of waitables; scripts define it."""
        raise NotImplementedError

    def logged_in(self, session):
        """Called when session has logged in, before its on_connected."""

    def order(self, sessions):
        """The order in which leave logs sessions out: theirs."""
        return sessions

    def start(self):
        self._steps = self.steps()
        self._advance(None)

    def stop(self, status):
        """End the main loop with status, unless it ended already."""
        if self.finished:
            return
        self.finished = True
        self.status = status
        self.loop.quit()

    def leave(self):
        """Log the sessions out one after the other, in order(), and stop
        once all are gone. Each but the first leaves a second after the one
        before is gone, so that those still online get what the server does
        with the last one's stanzas."""
        for s in self.order(self.sessions):
            if s.gone:
                continue
            if not s.leaving:
                first = not any(o.leaving for o in self.sessions)
                s.leaving = True
                if first:
                    s.client.disconnect()
                else:
                    GLib.timeout_add_seconds(1, lambda c=s.client: c.disconnect() and False)
            return
        self.stop(0)

    # Driving the steps.

    def _advance(self, value):
        try:
            call = self._steps.send(value)
        except StopIteration:
            say("OK")
            # Close the streams and wait for the server's end of them, or
            # give up waiting after a while: the steps are done anyway.
            self.done = True
            self.leave()
            GLib.timeout_add_seconds(5, lambda: self.stop(0) and False)
            return
        except Exception as e:  # noqa: BLE001 - any failure ends the run
            traceback.print_exc()
            fail("%s: %s" % (type(e).__name__, e))
            self.stop(1)
            return
        call(self._resume)

    def _resume(self, value):
        GLib.idle_add(lambda: self._advance(value) and False)

    def poke(self):
        """Run the check a waitable from wait() waits on, if any."""
        if self.waiter is not None:
            self.waiter()

    # Waitables.

    def connect(self, session):
        """A waitable: log session in; resumes with True."""
        def call(resume):
            session.on_connected = lambda: resume(True)
            session.client.connect()
        return call

    def task(self, start):
        """A waitable for an nbxmpp task: start(callback=, timeout=)
        starts it; resumes with its result, or with the exception it
        failed with."""
        def call(resume):
            def on_done(task):
                self.callback = None
                try:
                    result = task.finish()
                except BaseError as e:
                    result = e
                except Exception as e:  # noqa: BLE001 - nbxmpp raises others on bad replies
                    traceback.print_exc()
                    result = e
                resume(result)
            # The callback goes in with the call: a task that needs no reply
            # finishes inside it, and nbxmpp refuses callbacks on a finished
            # task. nbxmpp holds it by a weak reference: the run holds it
            # until it is called.
            self.callback = on_done
            start(callback=on_done, timeout=TASK_TIMEOUT)
        return call

    def run(self, label, start):
        """Run an nbxmpp task (see task); its result, or None after
        printing ERROR label."""
        result = yield self.task(start)
        if isinstance(result, Exception):
            self.error(label, result)
            return None
        return result

    def wait(self, test, seconds, expired):
        """A waitable: until test() is true, checked now and at every
        poke(); resumes with True, or after seconds with expired()."""
        def call(resume):
            def check():
                if test():
                    self.waiter = None
                    resume(True)
                    return True
                return False
            if check():
                return
            self.waiter = check

            def timeout():
                if self.waiter is check:
                    self.waiter = None
                    resume(expired())
                return False
            GLib.timeout_add_seconds(seconds, timeout)
        return call

    # Reports.

    def error_json(self, error):
        """What ERROR lines say of error (see error_json)."""
        return error_json(error)

    def error(self, label, error, word="ERROR"):
        """Print ERROR label (or word label) and what error is."""
        say(word, label, json.dumps(self.error_json(error)))


class AccountRun(Run):
    """A Run with one account (--jid, --password) and one session at a
    time, self.session, whose client is self.client. At login it prints

        LOGIN {"jid", "mechanism"}

    (login_json) and sends initial presence."""

    session = None

    @property
    def client(self):
        return self.session.client

    def new_session(self, resource):
        """A Session of the account with resource."""
        return Session(self, self.args.jid, self.args.password, resource)

    def login(self, resource):
        """A waitable: log in with a new session, which becomes
        self.session; resumes with True."""
        self.session = self.new_session(resource)
        self.sessions.append(self.session)
        return self.connect(self.session)

    def login_json(self, client):
        """What the LOGIN line says of client."""
        return {"jid": str(client.get_bound_jid()), "mechanism": mechanism(client)}

    def logged_in(self, session):
        say("LOGIN", json.dumps(self.login_json(session.client)))
        session.client.send_stanza(Presence())


def parser(doc, logins=("",), jid_help=None, timeout=40.0):
    """The parser of the flags every script takes (flags.parser): one
    --<prefix>jid and --<prefix>password per prefix in logins, --timeout
    (default timeout seconds) and --debug."""
    return flags.parser(doc, logins, jid_help, timeout, "log nbxmpp and its XML to stderr")


def main(make_run, args):
    """Run make_run(args, loop) on a GLib main loop under args.timeout and
    exit with its status (2 on the timeout)."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    loop = GLib.MainLoop()
    run = make_run(args, loop)

    def on_timeout():
        fail("timeout after %.0fs" % args.timeout)
        run.stop(2)
        return False

    GLib.timeout_add(int(args.timeout * 1000), on_timeout)
    GLib.idle_add(lambda: run.start() and False)
    loop.run()
    sys.exit(run.status)
