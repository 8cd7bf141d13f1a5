"""The flags every interop script takes, the slixmpp scripts' (common.py)
and the nbxmpp scripts' (nbxmpp_common.py) alike: the server's address,
the certificate trusted alone, the accounts, the overall timeout and
--debug.

Scripts import this module, through those, after putting their own folder
on sys.path.
"""

import argparse


def parser(doc, logins, jid_help, timeout, debug_help):
    """An argument parser described by the first line of doc.

    logins holds one prefix per account the script logs in with: each adds
    --<prefix>jid (whose help is jid_help) and --<prefix>password. timeout
    is the default of --timeout, in seconds; debug_help says what --debug
    logs.
    """
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cafile", required=True)
    for prefix in logins:
        p.add_argument("--%sjid" % prefix, required=True, help=jid_help)
        p.add_argument("--%spassword" % prefix, required=True)
    p.add_argument("--timeout", type=float, default=timeout)
    p.add_argument("--debug", action="store_true", help=debug_help)
    return p
