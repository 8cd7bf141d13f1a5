// converse_muc.mjs drives Converse.js in headless Chromium (through
// playwright-core, with Debian's /usr/bin/chromium; converse_common.mjs)
// into a group chat as a person would: it opens converse.html and logs in
// over XMPP over WebSocket with the room in auto_join_rooms (Converse
// creates it when it does not exist), waits for the room's view to show that it entered and for the
// other occupant in the occupant list, types a message in the room's text
// area and presses Enter, and waits for the other occupant's message to
// render in the room's view. It prints one fact a line for
// interop/muc_converse_test.go:
//
//	MECHANISM <SASL mechanism Strophe chose>
//	ENTERED <the room's JID> <the nickname Converse holds in it>
//	OCCUPANTS <nicknames in the room's occupant list, sorted, comma-separated>
//	SENT
//	SHOWN {"author", "text"}      the other occupant's message as the DOM shows it
//	SCREENSHOT <path>
//	OK
//
// and BLOCKED <url> for any request the page tried beyond loopback (none
// are let through). The test's Go occupant enters once ENTERED is printed,
// and answers once it got the message SENT says went out; this script
// waits for --reply-nick in the occupant list and then for --reply. Every
// step is bounded; the whole run by --timeout. The screenshot
// converse-muc.png (or converse-muc-failure.png) goes to --screenshots.
// CONVERSE_LOGLEVEL=debug in the environment logs Converse's console, XMPP
// traffic included, to stderr.

import { converseOptions, printMechanism, runConverse, screenshot, sendMessage } from "./converse_common.mjs";

const opts = converseOptions("converse_muc.mjs", {
  options: {
    room: { type: "string" },
    nick: { type: "string" },
    body: { type: "string" },
    reply: { type: "string" },
    "reply-nick": { type: "string" },
  },
  required: ["room", "nick", "body", "reply", "reply-nick"],
  timeout: "60",
});

// drive does what converse_muc.mjs is for, once Converse is logging in and joining the room.
async function drive(page) {
  // The room's view; entered once its text area is there (Converse shows
  // it only to an occupant) and the occupant list has its own nickname.
  const muc = page.locator(`converse-muc[jid="${opts.room}"]`);
  await muc.locator("textarea.chat-textarea").waitFor();
  await printMechanism(page);
  const own = await page.evaluate((jid) => window.adhocdConverse?.state.chatboxes.get(jid)?.get("nick"), opts.room);
  console.log(`ENTERED ${opts.room} ${own}`);
  const occupants = muc.locator("converse-muc-occupant-list-item .occupant-nick");
  await occupants.filter({ hasText: opts["reply-nick"] }).first().waitFor();
  const nicks = (await occupants.allInnerTexts()).map((n) => n.trim()).sort();
  console.log(`OCCUPANTS ${nicks.join(",")}`);

  await sendMessage(muc, opts.body);

  // The other occupant's message, as the view renders it.
  const reply = muc.locator(".chat-msg", { has: page.locator(".chat-msg__text", { hasText: opts.reply }) });
  await reply.waitFor();
  const author = (await reply.locator(".chat-msg__author").innerText()).trim();
  const text = (await reply.locator(".chat-msg__text").innerText()).trim();
  console.log(`SHOWN ${JSON.stringify({ author, text })}`);
  await screenshot(opts, page, "converse-muc.png");
}

runConverse(
  "converse_muc.mjs",
  opts,
  { settings: { auto_join_rooms: [{ jid: opts.room, nick: opts.nick }] }, failureShot: "converse-muc-failure.png" },
  drive,
);
