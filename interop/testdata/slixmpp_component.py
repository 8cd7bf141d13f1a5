#!/usr/bin/python3
"""slixmpp's ComponentXMPP serves a domain through adhocd (XEP-0114).

Run by interop/component_test.go with Debian's /usr/bin/python3 and
python3-slixmpp 1.8.3. A component connects to the server's component
port with the secret from the environment variable COMPONENT_SECRET (the
same variable the server reads it from, components.services[].secret_env)
and serves --component-domain with slixmpp's own plugins: XEP-0030 disco
(an identity gateway/xmpp named "Echo") and XEP-0199 ping. It echoes every
chat message back to its sender, from the address it was sent to.

A user logs in as in common.py and, once the component is connected:
sends a chat message to echo@DOMAIN and waits for the echo; asks the
component's disco#info (xep_0030 get_info) and pings it (xep_0199). The
component then pings the user's full JID, which slixmpp's xep_0199 on the
user's side answers.

Lines on stdout the test reads, besides common.Client's:

    COMPONENT_CONNECTED <domain>
    COMPONENT_GOT <sender's bare JID> <body>
    ECHOED <from> <body>
    INFO <category>/<type> <name>
    PONG component      (the user's ping to the component was answered)
    PONG user           (the component's ping to the user was answered)
    OK

Exits 0 when every step happened, 1 on any error and 2 on the overall
timeout.
"""

import asyncio
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import slixmpp  # noqa: E402

import common  # noqa: E402
from common import say  # noqa: E402

STEP = 10  # seconds any single answer may take


class Echo(slixmpp.ComponentXMPP):
    """A component that echoes chat messages and answers disco and ping."""

    def __init__(self, domain, secret, host, port):
        super().__init__(domain, secret, host, port)
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199")
        self["xep_0030"].add_identity(category="gateway", itype="xmpp", name="Echo")
        self.connected_future = asyncio.get_running_loop().create_future()
        self.add_event_handler("session_start", self._on_start)
        self.add_event_handler("message", self._on_message)
        self.add_event_handler("disconnected", self._on_disconnected)

    def _on_start(self, _event):
        say("COMPONENT_CONNECTED", self.boundjid.bare)
        if not self.connected_future.done():
            self.connected_future.set_result(True)

    def _on_disconnected(self, reason):
        if not self.connected_future.done():
            self.connected_future.set_exception(RuntimeError("component disconnected: %s" % reason))

    def _on_message(self, msg):
        if msg["type"] != "chat":
            return
        say("COMPONENT_GOT", msg["from"].bare, msg["body"])
        msg.reply("echo: " + msg["body"]).send()


async def run(args):
    secret = os.environ["COMPONENT_SECRET"]
    comp = Echo(args.component_domain, secret, args.host, args.component_port)
    comp.connect()
    await asyncio.wait_for(comp.connected_future, STEP)

    user = common.Client("user", args.user_jid, args.user_password, args.cafile,
                         plugins=("xep_0030", "xep_0199"))
    echoed = asyncio.get_running_loop().create_future()

    def on_message(msg):
        if msg["type"] == "chat" and msg["from"].domain == args.component_domain and not echoed.done():
            echoed.set_result(msg)

    user.add_event_handler("message", on_message)
    await user.login(args.host, args.port)

    user.send_message(mto="echo@" + args.component_domain, mbody=args.body, mtype="chat")
    msg = await asyncio.wait_for(echoed, STEP)
    say("ECHOED", msg["from"], msg["body"])

    info = await user["xep_0030"].get_info(jid=args.component_domain, timeout=STEP)
    for category, itype, _lang, name in sorted(info["disco_info"]["identities"]):
        say("INFO", "%s/%s" % (category, itype), name)

    await user["xep_0199"].ping(jid=args.component_domain, timeout=STEP)
    say("PONG", "component")

    await comp["xep_0199"].ping(jid=user.boundjid.full, ifrom=args.component_domain, timeout=STEP)
    say("PONG", "user")

    await user.logout()
    comp.disconnect()
    await comp.disconnected
    say("OK")


def main():
    p = common.parser(__doc__, logins=("user-",))
    p.add_argument("--component-port", type=int, required=True)
    p.add_argument("--component-domain", required=True)
    p.add_argument("--body", required=True)
    args = p.parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
