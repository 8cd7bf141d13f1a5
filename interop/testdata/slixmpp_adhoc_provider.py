#!/usr/bin/python3
"""A slixmpp bot provides a two-stage XEP-0050 command through adhocd.

Run by interop/adhoc_test.go (TestSlixmppProviderThroughServer) with Debian's
/usr/bin/python3 and python3-slixmpp. The bot logs in as in common.py and
registers, with the xep_0050 plugin's provider API, the command
urn:interop:echo ("Echo") on its own full JID:

  - the first handler (execute) answers a form of type 'form' asking a
    required text-single field 'text', with the session's has_next left
    False, so slixmpp offers only <complete/> (and no execute attribute);
  - the second handler (run on complete) reads the submitted 'text' and ends
    the command with a note of type info holding that text reversed;
  - a cancel handler records the cancellation.

The requester is adhocd's own Go requester, logged in as another user of the
same server, so every request and reply is routed by adhocd. The script runs
until its stdin is closed (or the overall timeout), then logs out.

Lines on stdout the test reads:

    MECHANISM <role> <SASL mechanism name>
    AUTH_FAILED <role> <SASL mechanism name> <condition>
    BOUND <full JID>                 (the command is registered by then)
    EXECUTED <requester JID> <session id>
    SUBMITTED <session id> <JSON string: the submitted text>
    CANCELED <session id>
    OK

Exits 0 when stdin was closed and the bot logged out, 1 on any error and 2
on the overall timeout.
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

NODE = "urn:interop:echo"


def make_handlers(client):
    forms = client["xep_0004"]

    def on_execute(iq, session):
        say("EXECUTED", iq["from"], session["id"])
        form = forms.make_form(ftype="form", title="Echo")
        form.add_field(var="text", ftype="text-single", label="Text to echo", required=True)
        session["payload"] = form
        session["next"] = on_submit
        session["cancel"] = on_cancel
        session["has_next"] = False  # the next step completes the command
        return session

    def on_submit(payload, session):
        # slixmpp hands later handlers the payload items alone: here the
        # submitted data form (a list when the request carried none).
        if isinstance(payload, list):
            raise ValueError("no data form submitted")
        text = payload.get_values().get("text")
        if isinstance(text, list):
            text = "\n".join(text)
        text = text or ""
        say("SUBMITTED", session["id"], json.dumps(text))
        session["payload"] = None
        session["notes"] = [("info", text[::-1])]
        session["next"] = None
        session["has_next"] = False
        return session

    def on_cancel(_iq, session):
        say("CANCELED", session["id"])
        return session

    return on_execute


async def run(args):
    c = common.Client("provider", args.jid, args.password, args.cafile,
                      plugins=("xep_0030", "xep_0004", "xep_0050"))
    await c.login(args.host, args.port)
    # add_command without jid uses boundjid, known once the session started.
    c["xep_0050"].add_command(node=NODE, name="Echo", handler=make_handlers(c))
    say("BOUND", c.boundjid.full)

    # Serve until the test closes our stdin.
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while await reader.readline():
            pass
    finally:
        transport.close()

    await c.logout()
    say("OK")


def main():
    args = common.parser(__doc__).parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
