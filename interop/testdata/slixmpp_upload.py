#!/usr/bin/python3
"""slixmpp's own XEP-0363 plugin (xep_0363) uploads a file to adhocd's service.

Run by interop/upload_test.go with Debian's /usr/bin/python3,
python3-slixmpp 1.8.3 and python3-aiohttp (which the plugin PUTs with). A
client logs in as in common.py and finds the service as the plugin's
find_upload_service does: the server's disco#items, then each item's
disco#info, for identity store/file with the feature urn:xmpp:http:upload:0,
and max-file-size from its XEP-0128 form. (The plugin's own
find_upload_service cannot run on Python 3.11: slixmpp 1.8.3's
get_info_from_domain passes coroutines to asyncio.wait, which raises
TypeError; the script does the same steps with xep_0030's get_items and
get_info and hands the plugin the service and the size, as
find_upload_service would.) Then upload_file asks for a slot and PUTs the
file; the script GETs the URL the plugin returned, and asks for a file one
byte over max-file-size, which the plugin refuses by itself.

Lines on stdout the test reads, besides common.Client's:

    SERVICE <the upload service's JID>
    MAX_FILE_SIZE <bytes, from disco>
    URL <the GET URL upload_file returned>
    GOT <HTTP status> <Content-Type> <bytes> <sha256 of the body, hex>
    TOO_BIG <the plugin's FileTooBig message>
    OK

Exits 0 when every step happened, 1 on any error and 2 on the overall
timeout.
"""

import asyncio
import hashlib
import io
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aiohttp  # noqa: E402
from slixmpp import JID  # noqa: E402
from slixmpp.plugins.xep_0363.http_upload import FileTooBig  # noqa: E402

import common  # noqa: E402
from common import say  # noqa: E402

STEP = 10  # seconds any single answer may take


async def find_service(client, domain):
    """The upload service among domain's disco items and its
    max-file-size, found as xep_0363's find_upload_service finds them."""
    disco = client.plugin["xep_0030"]
    items = await disco.get_items(jid=domain, timeout=STEP)
    for item_jid, _node, _name in items["disco_items"]["items"]:
        info = (await disco.get_info(jid=item_jid, timeout=STEP))["disco_info"]
        if not any(i[0] == "store" and i[1] == "file" for i in info["identities"]):
            continue
        if "urn:xmpp:http:upload:0" not in info["features"]:
            continue
        for form in info.iterables:
            values = form["values"]
            if values.get("FORM_TYPE") == ["urn:xmpp:http:upload:0"]:
                return JID(item_jid), int(values["max-file-size"])
        return JID(item_jid), float("+inf")
    raise RuntimeError("no upload service among the items of %s" % domain)


async def run(args):
    client = common.Client("uploader", args.jid, args.password, args.cafile,
                           plugins=("xep_0030", "xep_0128", "xep_0363"))
    await client.login(args.host, args.port)
    upload = client.plugin["xep_0363"]

    service, max_size = await find_service(client, JID(args.jid).domain)
    say("SERVICE", service)
    say("MAX_FILE_SIZE", max_size)
    upload.upload_service, upload.max_file_size = service, max_size

    url = await upload.upload_file(args.file, timeout=STEP)
    say("URL", url)

    async with aiohttp.ClientSession() as session:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=STEP)) as resp:
            body = await resp.read()
            say("GOT", resp.status, resp.headers.get("Content-Type"), len(body), hashlib.sha256(body).hexdigest())

    too_big = upload.max_file_size + 1
    try:
        await upload.upload_file("big.bin", size=too_big, input_file=io.BytesIO(b""), timeout=STEP)
        raise RuntimeError("a file over max-file-size was uploaded")
    except FileTooBig as e:
        say("TOO_BIG", str(e))

    await client.logout()
    say("OK")


def main():
    p = common.parser(__doc__)
    p.add_argument("--file", required=True, help="the file to upload")
    args = p.parse_args()
    common.main(run, args)


if __name__ == "__main__":
    main()
