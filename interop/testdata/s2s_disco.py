#!/usr/bin/python3
"""A slixmpp user logs in to a server and asks a JID's disco#info.

Run by interop/s2speer_test.go with Debian's /usr/bin/python3 and
python3-slixmpp, against a federation peer (Prosody or ejabberd) or, later,
adhocd. The user logs in as in common.py (STARTTLS, the certificate in
--cafile the only trusted CA, the JID's domain the name checked, SCRAM),
fetches its roster, sends presence, then asks disco#info (XEP-0030) of
--target: the server JID of its own domain when not given, or any other
JID, such as the server JID of a remote domain (the question then travels
over server-to-server streams).

Lines on stdout the test reads, besides common.Client's:

    IDENTITY <target> <category>/<type> <name, JSON>
    FEATURE <target> <var>
    OK

Exits 0 when the answer came, 1 on any error (an error reply included) and
2 on the overall timeout.
"""

import json
import os
import sys

# common.py sits next to this script; leave no __pycache__ in the tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import say  # noqa: E402

STEP = 15  # seconds the disco answer may take (a new s2s stream included)


async def run(args):
    user = common.Client("user", args.jid, args.password, args.cafile,
                         plugins=("xep_0030",), tls_max=args.tls_max, roster=True)
    await user.login(args.host, args.port)
    target = args.target or user.boundjid.domain
    info = await user["xep_0030"].get_info(jid=target, timeout=STEP)
    for category, itype, _lang, name in sorted(info["disco_info"]["identities"], key=lambda i: tuple(x or "" for x in i)):
        say("IDENTITY", target, "%s/%s" % (category, itype), json.dumps(name))
    for var in sorted(info["disco_info"]["features"]):
        say("FEATURE", target, var)
    await user.logout()
    say("OK")


def main():
    p = common.parser(__doc__, tls_max=True)
    p.add_argument("--target", help="the JID asked (default: the server JID of the user's domain)")
    args = p.parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
