// converse_common.mjs is what converse.mjs and converse_muc.mjs share to
// drive Converse.js in headless Chromium (through playwright-core, with
// Debian's /usr/bin/chromium): the flags every run takes, the browser held
// to loopback, the login over XMPP over WebSocket (RFC 7395) from
// converse.html, the MECHANISM and SCREENSHOT lines, the bound on the whole
// run and what a failure prints.
//
// Every run takes --url (converse.html as the test serves it),
// --websocket-url, --jid, --password, --screenshots (a folder),
// --chromium and --timeout (seconds, for the whole run). Besides what the
// script prints, a run prints BLOCKED <url> for any request the page tried
// beyond loopback (none are let through) and OK at its end. Every step is
// bounded. CONVERSE_LOGLEVEL=debug in the environment logs Converse's
// console, XMPP traffic included, to stderr.

import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

// step bounds each wait for the UI.
const step = 20_000;

// Chromium as root, headless, and quiet: nothing of its own goes out (the
// only network here is loopback). playwright-core adds a fresh temporary
// --user-data-dir, --no-sandbox and --remote-debugging-pipe.
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

// converseOptions parses the command line of script: the flags every run
// takes and the script's own (parseArgs options), of which those named in
// required, with the common ones but --chromium and --timeout, must be
// given. timeout is the default of --timeout. It exits with status 2 when
// one is missing.
export function converseOptions(script, { options, required, timeout }) {
  const { values: opts } = parseArgs({
    options: {
      url: { type: "string" },
      "websocket-url": { type: "string" },
      jid: { type: "string" },
      password: { type: "string" },
      screenshots: { type: "string" },
      chromium: { type: "string", default: "/usr/bin/chromium" },
      timeout: { type: "string", default: timeout },
      ...options,
    },
  });
  for (const name of ["url", "websocket-url", "jid", "password", "screenshots", ...required]) {
    if (!opts[name]) {
      console.error(`${script}: --${name} is required`);
      process.exit(2);
    }
  }
  return opts;
}

// screenshot saves what target shows, the page's viewport or an element (a
// locator) alone, as name in the --screenshots folder, and prints its path.
export async function screenshot(opts, target, name) {
  const path = `${opts.screenshots}/${name}`;
  await target.screenshot({ path });
  console.log(`SCREENSHOT ${path}`);
}

// printMechanism prints the SASL mechanism Strophe chose, once logged in.
export async function printMechanism(page) {
  const mechanism = await page.evaluate(() => window.adhocdConverse?.api.connection.get()?._sasl_mechanism?.mechname);
  console.log(`MECHANISM ${mechanism}`);
}

// sendMessage types body in the text area of view (a chat's or a room's,
// a locator) as a person would, presses Enter, waits for the message to show
// in the view and prints SENT.
export async function sendMessage(view, body) {
  const textarea = view.locator("textarea.chat-textarea");
  await textarea.fill(body);
  await textarea.press("Enter");
  await view.locator(".chat-msg__text", { hasText: body }).waitFor();
  console.log("SENT");
}

// runConverse starts Chromium, opens converse.html at --url, starts Converse
// logged in as --jid over --websocket-url with settings added to the common
// ones, and calls drive with the page; then it closes the browser and prints
// OK. When a step fails it saves the page as failureShot, prints the error
// and exits with status 1; past --timeout it exits with status 3.
export function runConverse(script, opts, { settings, failureShot }, drive) {
  let browser, page;
  const deadline = setTimeout(async () => {
    console.error(`${script}: gave up after ${opts.timeout}s`);
    await browser?.close().catch(() => {});
    process.exit(3);
  }, Number(opts.timeout) * 1000);

  const run = async () => {
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
    await page.evaluate((s) => window.startConverse(s), {
      websocket_url: opts["websocket-url"],
      jid: opts.jid,
      password: opts.password,
      auto_login: true,
      auto_reconnect: false,
      // No XEP-0156 lookup of https://localhost/.well-known/host-meta.
      discover_connection_methods: false,
      assets_path: "/dist/",
      i18n: "en",
      // Not fullscreen: its login page shows sponsors' logos from conversejs.org.
      view_mode: "overlayed",
      play_sounds: false,
      // The About tab shows sponsors' logos from conversejs.org.
      show_client_info: false,
      // OMEMO is beside the point here and fetches its WebAssembly from a
      // path of its own.
      blacklisted_plugins: ["converse-omemo"],
      show_desktop_notifications: false,
      loglevel: process.env.CONVERSE_LOGLEVEL ?? "warn",
      ...settings,
    });

    await drive(page);
    await browser.close();
    console.log("OK");
  };

  run().then(
    () => clearTimeout(deadline),
    async (err) => {
      console.error(`${script}: ${err?.stack ?? err}`);
      if (page) {
        await screenshot(opts, page, failureShot).catch(() => {});
      }
      await browser?.close().catch(() => {});
      process.exit(1);
    },
  );
}
