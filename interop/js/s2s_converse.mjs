// s2s_converse.mjs drives Converse.js in headless Chromium (through
// playwright-core, with Debian's /usr/bin/chromium; converse_common.mjs) as
// a person who adds a contact of another server would: it opens
// converse.html and logs in over XMPP over WebSocket to adhocd, opens the
// Contacts menu → "Add a contact", types the contact's JID (on a federated
// server) and a name, presses Add (the request carries --nickname, the
// user's own, XEP-0172), waits until the contact's roster item
// shows it online with the subscription both (the contact approved and
// subscribed back; Converse approves a request of a contact it subscribed
// to by itself), types a message in the chat the dialog opened and presses
// Enter, waits for the contact's answer to render in that chat, and logs
// out from its profile dialog. It prints one fact a line for
// interop/s2s_converse_test.go:
//
//	MECHANISM <SASL mechanism Strophe chose>
//	ADDED <the contact's JID as the roster item shows it> <its name there>
//	ROSTER {"subscription", "ask", "requesting", "status"}
//	    the contact in Converse's roster model, and the status its roster
//	    item shows
//	SENT
//	SHOWN {"author", "text", "from"}
//	    the contact's message as the chat's DOM shows it, and the JID
//	    Converse has it from
//	SCREENSHOT <path>
//	LOGGED_OUT
//	OK
//
// and BLOCKED <url> for any request the page tried beyond loopback (none
// are let through). The contact's user is testdata/s2s_converse_peer.py,
// which approves, subscribes back and answers once it got --body. Every
// step is bounded; the whole run by --timeout. The screenshots
// s2s-converse-roster.png (the roster with the contact online) and
// s2s-converse-chat.png (the chat, both messages), or
// s2s-converse-failure.png, go to --screenshots. CONVERSE_LOGLEVEL=debug in
// the environment logs Converse's console, XMPP traffic included, to stderr.

import { converseOptions, printMechanism, runConverse, screenshot, sendMessage } from "./converse_common.mjs";

const opts = converseOptions("s2s_converse.mjs", {
  options: {
    contact: { type: "string" },
    "contact-name": { type: "string" },
    body: { type: "string" },
    reply: { type: "string" },
    nickname: { type: "string" },
  },
  required: ["contact", "contact-name", "body", "reply", "nickname"],
  timeout: "120",
});

// federation bounds each wait for the other server: the first
// server-to-server streams are set up then, both ways.
const federation = 60_000;

// drive does what s2s_converse.mjs is for, once Converse is logging in.
async function drive(page) {
  // Logged in: the controlbox shows the settings cog only when connected.
  await page.locator("a.show-client-info").waitFor();
  await printMechanism(page);

  // Contacts menu → Add a contact: the JID and a name, then Add.
  const roster = page.locator("converse-roster");
  await roster.locator(".dropdown--contacts button.dropdown-toggle").click();
  await roster.locator("a.add-contact").click();
  const modal = page.locator("converse-add-contact-modal");
  const form = modal.locator("form.add-xmpp-contact");
  await form.locator('input[name="jid"]').fill(opts.contact);
  await form.locator('input[name="name"]').fill(opts["contact-name"]);
  await form.locator('button[type="submit"]').click();
  await modal.locator(".modal").waitFor({ state: "hidden" });

  // The new roster item; Converse shows its status only once the contact
  // approved (subscription to or both).
  const item = roster.locator(`a.open-chat[data-jid="${opts.contact}"]`);
  await item.waitFor();
  // Converse may draw the item from the first roster push or presence
  // before the item's name is in; a user sees the name a moment later.
  // Wait for it (bounded), and print what is there either way.
  await item.locator(".contact-name", { hasText: opts["contact-name"] }).waitFor({ timeout: 10_000 }).catch(() => {});
  console.log(`ADDED ${await item.getAttribute("data-jid")} ${(await item.locator(".contact-name").innerText()).trim()}`);
  await page.waitForFunction(
    (jid) => {
      const c = window.adhocdConverse?.state.roster?.get(jid);
      return c?.get("subscription") === "both" && !c.get("ask") && c.getStatus() === "online";
    },
    opts.contact,
    { timeout: federation },
  );
  await item.locator(".contact-name.contact-name--online").waitFor();
  await item.locator("converse-icon.chat-status--avatar").waitFor();
  const state = await page.evaluate((jid) => {
    const c = window.adhocdConverse.state.roster.get(jid);
    return { subscription: c.get("subscription"), ask: c.get("ask") ?? null, requesting: c.get("requesting") ?? null };
  }, opts.contact);
  state.status = await item.locator("converse-icon.chat-status--avatar").getAttribute("title");
  console.log(`ROSTER ${JSON.stringify(state)}`);
  await screenshot(opts, page, "s2s-converse-roster.png");

  // The chat the dialog opened (or the roster item opens): type, Enter.
  const chat = page.locator(`converse-chat[jid="${opts.contact}"]`);
  if (!(await chat.count())) {
    await item.click();
  }
  await sendMessage(chat, opts.body);

  // The contact's answer, as the chat renders it.
  const reply = chat.locator(".chat-msg", { has: page.locator(".chat-msg__text", { hasText: opts.reply }) });
  await reply.waitFor({ timeout: federation });
  const author = (await reply.locator(".chat-msg__author").innerText()).trim();
  const text = (await reply.locator(".chat-msg__text").innerText()).trim();
  const from = await page.evaluate(
    ([jid, body]) => window.adhocdConverse.state.chatboxes.get(jid)?.messages.findWhere({ body })?.get("from") ?? null,
    [opts.contact, opts.reply],
  );
  console.log(`SHOWN ${JSON.stringify({ author, text, from })}`);
  await screenshot(opts, page, "s2s-converse-chat.png");

  // Log out as its user does: the profile → Log out → Confirm. Strophe
  // sends unavailable presence and closes the stream (RFC 7395 §3.6), so
  // adhocd ends the session rather than keep it for resumption.
  await page.locator("a.show-profile").click();
  await page.locator("converse-profile-modal .modal-footer button.btn-danger").click();
  await page.locator('converse-confirm-modal form.confirm button[type="submit"]').click();
  await page.waitForFunction(() => !window.adhocdConverse.api.connection.connected());
  console.log("LOGGED_OUT");
}

runConverse(
  "s2s_converse.mjs",
  opts,
  // nickname: the user's own, which Converse sends with a subscription
  // request (XEP-0172).
  { settings: { show_controlbox_by_default: true, nickname: opts.nickname }, failureShot: "s2s-converse-failure.png" },
  drive,
);
