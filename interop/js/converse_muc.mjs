// converse_muc.mjs drives Converse.js in headless Chromium (through
// playwright-core, with Debian's /usr/bin/chromium) into a group chat as a
// person would: it opens converse.html and logs in over XMPP over WebSocket
// with the room in auto_join_rooms (Converse creates it when it does not
// exist), waits for the room's view to show that it entered and for the
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

import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    "websocket-url": { type: "string" },
    jid: { type: "string" },
    password: { type: "string" },
    room: { type: "string" },
    nick: { type: "string" },
    body: { type: "string" },
    reply: { type: "string" },
    "reply-nick": { type: "string" },
    screenshots: { type: "string" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
    timeout: { type: "string", default: "60" },
  },
});
for (const name of ["url", "websocket-url", "jid", "password", "room", "nick", "body", "reply", "reply-nick", "screenshots"]) {
  if (!opts[name]) {
    console.error(`converse_muc.mjs: --${name} is required`);
    process.exit(2);
  }
}

// step bounds each wait for the UI.
const step = 20_000;
let browser, page;
const deadline = setTimeout(async () => {
  console.error(`converse_muc.mjs: gave up after ${opts.timeout}s`);
  await browser?.close().catch(() => {});
  process.exit(3);
}, Number(opts.timeout) * 1000);

// Chromium as converse.mjs runs it: headless, quiet, loopback only.
const chromiumArgs = [
  "--headless=new",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

// isLoopback tells whether a request stays on this machine.
function isLoopback(url) {
  const u = new URL(url);
  return ["data:", "blob:", "about:"].includes(u.protocol) || ["127.0.0.1", "localhost", "[::1]"].includes(u.hostname);
}

async function screenshot(name) {
  const path = `${opts.screenshots}/${name}`;
  await page.screenshot({ path, fullPage: false });
  console.log(`SCREENSHOT ${path}`);
}

async function run() {
  browser = await chromium.launch({ executablePath: opts.chromium, headless: true, args: chromiumArgs, timeout: step });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-US" });
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (isLoopback(url)) {
      return route.continue();
    }
    console.log(`BLOCKED ${url}`);
    return route.abort("blockedbyclient");
  });
  page = await context.newPage();
  page.setDefaultTimeout(step);
  page.on("console", (msg) => {
    if (process.env.CONVERSE_LOGLEVEL || ["error", "warning"].includes(msg.type())) {
      console.error(`console.${msg.type()}: ${msg.text()}`);
    }
  });
  page.on("pageerror", (err) => console.error(`page error: ${err.message}`));

  await page.goto(opts.url);
  await page.waitForFunction(() => document.documentElement.dataset.converseLoaded === "true");
  await page.evaluate((settings) => window.startConverse(settings), {
    websocket_url: opts["websocket-url"],
    jid: opts.jid,
    password: opts.password,
    auto_login: true,
    auto_reconnect: false,
    discover_connection_methods: false,
    assets_path: "/dist/",
    i18n: "en",
    // Not fullscreen: its login page shows sponsors' logos from conversejs.org.
    view_mode: "overlayed",
    auto_join_rooms: [{ jid: opts.room, nick: opts.nick }],
    play_sounds: false,
    show_client_info: false,
    blacklisted_plugins: ["converse-omemo"],
    show_desktop_notifications: false,
    loglevel: process.env.CONVERSE_LOGLEVEL ?? "warn",
  });

  // The room's view; entered once its text area is there (Converse shows
  // it only to an occupant) and the occupant list has its own nickname.
  const muc = page.locator(`converse-muc[jid="${opts.room}"]`);
  const textarea = muc.locator("textarea.chat-textarea");
  await textarea.waitFor();
  const mechanism = await page.evaluate(() => window.adhocdConverse?.api.connection.get()?._sasl_mechanism?.mechname);
  console.log(`MECHANISM ${mechanism}`);
  const own = await page.evaluate((jid) => window.adhocdConverse?.state.chatboxes.get(jid)?.get("nick"), opts.room);
  console.log(`ENTERED ${opts.room} ${own}`);
  const occupants = muc.locator("converse-muc-occupant-list-item .occupant-nick");
  await occupants.filter({ hasText: opts["reply-nick"] }).first().waitFor();
  const nicks = (await occupants.allInnerTexts()).map((n) => n.trim()).sort();
  console.log(`OCCUPANTS ${nicks.join(",")}`);

  await textarea.fill(opts.body);
  await textarea.press("Enter");
  await muc.locator(".chat-msg__text", { hasText: opts.body }).waitFor();
  console.log("SENT");

  // The other occupant's message, as the view renders it.
  const reply = muc.locator(".chat-msg", { has: page.locator(".chat-msg__text", { hasText: opts.reply }) });
  await reply.waitFor();
  const author = (await reply.locator(".chat-msg__author").innerText()).trim();
  const text = (await reply.locator(".chat-msg__text").innerText()).trim();
  console.log(`SHOWN ${JSON.stringify({ author, text })}`);
  await screenshot("converse-muc.png");

  await browser.close();
  console.log("OK");
}

run().then(
  () => clearTimeout(deadline),
  async (err) => {
    console.error(`converse_muc.mjs: ${err?.stack ?? err}`);
    if (page) {
      await screenshot("converse-muc-failure.png").catch(() => {});
    }
    await browser?.close().catch(() => {});
    process.exit(1);
  },
);
