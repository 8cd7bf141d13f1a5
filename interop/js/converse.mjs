// converse.mjs drives Converse.js in headless Chromium (through
// playwright-core, with Debian's /usr/bin/chromium; converse_common.mjs) as
// a person would: it opens converse.html, logs in over XMPP over WebSocket,
// opens Settings → Commands, lists the commands of the server JID, runs the
// one-stage get-online-users-num, the add-user form and the three-stage
// wizard (Next, Previous, Next, Next, Complete), and sends a chat message to
// a contact of the roster. It prints one fact a line for
// interop/converse_test.go:
//
//	MECHANISM <SASL mechanism Strophe chose>
//	COMMANDS <number of commands listed>
//	ONLINE_USERS <value shown in the result form>
//	ADD_USER_FORM <field names of the add-user form, comma-separated>
//	ADD_USER <alert> | <note>
//	WIZARD <label> <JSON: the command's view as shown, see readCommand>
//	SENT
//	SCREENSHOT <path>
//	OK
//
// The WIZARD labels are stage1, stage2, stage1-again (after Previous),
// stage2-again, stage3 and completed.
//
// and BLOCKED <url> for any request the page tried beyond loopback (none
// are let through). Every step is bounded; the whole run by --timeout.
// Screenshots go to the --screenshots folder: converse-online-users.png,
// converse-add-user-form.png, converse-add-user.png,
// converse-wizard-prev.png (stage 1 again after Previous),
// converse-wizard.png (the dialog alone, the wizard completed) and
// converse-chat.png, or converse-failure.png when a step fails.
// CONVERSE_LOGLEVEL=debug in the environment logs Converse's console, XMPP
// traffic included, to stderr.

import { converseOptions, printMechanism, runConverse, screenshot, sendMessage } from "./converse_common.mjs";

const NS_ADMIN = "http://jabber.org/protocol/admin";

const opts = converseOptions("converse.mjs", {
  options: {
    domain: { type: "string", default: "localhost" },
    "new-user": { type: "string" },
    "new-password": { type: "string" },
    "wizard-node": { type: "string" },
    "wizard-name": { type: "string" },
    "wizard-color": { type: "string" },
    "wizard-contact": { type: "string" },
    "wizard-comment": { type: "string" },
    to: { type: "string" },
    body: { type: "string" },
  },
  required: ["new-user", "new-password", "to", "body", "wizard-node", "wizard-name", "wizard-color", "wizard-contact", "wizard-comment"],
  timeout: "90",
});

// readCommand returns what the view of a running command shows: the
// form's heading, instructions and alert, every field (name, what the
// widget shows, the value attribute Converse rendered from the server's
// form, and whether it is read-only) and the action buttons, with the
// server's note and alert above the list of commands.
async function readCommand(adhoc, form) {
  const view = await form.evaluate((f) => {
    const text = (sel) => f.querySelector(sel)?.textContent.trim() ?? "";
    const fields = [...f.querySelectorAll("fieldset [name]")]
      .filter((e) => !e.name.startsWith("command_"))
      .map((e) => {
        const field = { name: e.name, readonly: e.readOnly === true };
        if (e.type === "checkbox") {
          field.shown = e.checked ? "checked" : "unchecked";
        } else if (e.tagName === "SELECT") {
          field.shown = [...e.selectedOptions].map((o) => o.value).join(",");
        } else {
          field.shown = e.value;
        }
        if (e.tagName === "INPUT" && e.type !== "checkbox") {
          field.attribute = e.getAttribute("value");
        }
        return field;
      });
    return {
      title: text("h6"),
      instructions: text(".form-instructions"),
      formAlert: text(".alert"),
      fields,
      buttons: [...f.querySelectorAll("input[data-action]")].map((b) => `${b.dataset.action}:${b.value}`),
    };
  });
  const above = adhoc.locator(":scope > .alert");
  const note = adhoc.locator(":scope > p.form-help");
  view.alert = (await above.count()) ? (await above.innerText()).trim() : "";
  view.note = (await note.count()) ? (await note.innerText()).trim() : "";
  return view;
}

// runWizard runs the three-stage wizard from its link in the command list
// as a person would: fill stage 1, Next, Previous (the answers should be
// there again), Next, fill stage 2, Next, fill stage 3, Complete.
async function runWizard(page, adhoc) {
  const node = opts["wizard-node"];
  const link = adhoc.locator(`a[data-command-node="${node}"]`);
  const form = adhoc.locator("li.list-group-item", { has: page.locator(`a[data-command-node="${node}"]`) }).locator("form");
  const report = async (label) => console.log(`WIZARD ${label} ${JSON.stringify(await readCommand(adhoc, form))}`);
  const press = (action) => form.locator(`input[data-action="${action}"]`).click();
  const colour = form.locator('select[name="color"]');
  const contact = form.locator('[name="contact"]');
  const comment = form.locator('textarea[name="comment"]');

  await link.click();
  await colour.waitFor();
  await report("stage1");
  await form.locator('[name="name"]').fill(opts["wizard-name"]);
  await colour.selectOption(opts["wizard-color"]);
  await press("next");
  await contact.waitFor();
  await report("stage2");
  await press("prev");
  await colour.waitFor();
  await report("stage1-again");
  await screenshot(opts, page, "converse-wizard-prev.png");
  await press("next");
  await contact.waitFor();
  await report("stage2-again");
  await contact.fill(opts["wizard-contact"]);
  await form.locator('input[name="notify"]').check();
  await press("next");
  await comment.waitFor();
  await report("stage3");
  await comment.fill(opts["wizard-comment"]);
  await press("complete");
  // Completed with a result form: Converse keeps the command open with
  // the form read-only, and shows its alert and the note above the list.
  await form.locator('input[name="comment"][readonly]').waitFor();
  await report("completed");
  // A window tall enough for the whole dialog, taken alone: the alert and
  // the note above the list and the result form at its end in one picture.
  const viewport = page.viewportSize();
  await page.setViewportSize({ width: viewport.width, height: 2800 });
  await adhoc.locator(":scope > .alert").scrollIntoViewIfNeeded();
  await form.scrollIntoViewIfNeeded();
  await screenshot(opts, page.locator("converse-user-settings-modal .modal-content"), "converse-wizard.png");
  await page.setViewportSize(viewport);
  await link.click(); // fold it away
  await form.waitFor({ state: "detached" });
}

// drive does what converse.mjs is for, once Converse is logged in.
async function drive(page) {
  // Logged in: the controlbox shows the settings cog only when connected.
  const cog = page.locator("a.show-client-info");
  await cog.waitFor();
  await printMechanism(page);

  // Settings → Commands, on the server JID the form proposes (the domain).
  await cog.click();
  const modal = page.locator("converse-user-settings-modal");
  // Without the About tab the modal opens on Commands; with the Services
  // tab beside it, Commands has a tab of its own.
  const commandsTab = modal.locator("#commands-tab");
  if (await commandsTab.count()) {
    await commandsTab.click();
  }
  const adhoc = modal.locator("converse-adhoc-commands");
  const jidInput = adhoc.locator('input[name="jid"]');
  await jidInput.fill(opts.domain);
  await adhoc.locator('input[type="submit"]').click();
  await adhoc.locator(".list-group-item.active", { hasText: "Commands found" }).waitFor();
  const commands = adhoc.locator(".list-group-item:not(.active) a[data-command-node]");
  console.log(`COMMANDS ${await commands.count()}`);

  // One stage: the result form shows the number at once.
  const onlineNode = `${NS_ADMIN}#get-online-users-num`;
  const onlineLink = adhoc.locator(`a[data-command-node="${onlineNode}"]`);
  await onlineLink.click();
  const onlineField = adhoc.locator('input[name="onlineusersnum"]');
  await onlineField.waitFor();
  console.log(`ONLINE_USERS ${await onlineField.inputValue()}`);
  await screenshot(opts, page, "converse-online-users.png");
  await onlineLink.click(); // fold it away

  // A form: fill in the fields and press Complete.
  const addNode = `${NS_ADMIN}#add-user`;
  await adhoc.locator(`a[data-command-node="${addNode}"]`).click();
  const form = adhoc.locator("li.list-group-item", { has: page.locator(`a[data-command-node="${addNode}"]`) }).locator("form");
  await form.locator('[name="accountjid"]').waitFor();
  const names = await form
    .locator("fieldset [name]")
    .evaluateAll((els) => els.map((e) => e.getAttribute("name")).filter((n) => !n.startsWith("command_")));
  console.log(`ADD_USER_FORM ${names.join(",")}`);
  await form.locator('[name="accountjid"]').fill(`${opts["new-user"]}@${opts.domain}`);
  await form.locator('[name="password"]').fill(opts["new-password"]);
  await form.locator('[name="password-verify"]').fill(opts["new-password"]);
  const complete = form.locator('input[data-action="complete"]');
  await complete.scrollIntoViewIfNeeded();
  await screenshot(opts, page, "converse-add-user-form.png");
  await complete.click();
  // Completed: the command folds away and the view shows an alert and the
  // server's note above the list.
  const alert = adhoc.locator(":scope > .alert");
  await alert.waitFor();
  await form.waitFor({ state: "detached" });
  const note = adhoc.locator(":scope > p.form-help");
  const noteText = (await note.count()) ? (await note.innerText()).trim() : "";
  console.log(`ADD_USER ${(await alert.innerText()).trim()} | ${noteText}`);
  await alert.scrollIntoViewIfNeeded();
  await screenshot(opts, page, "converse-add-user.png");

  await runWizard(page, adhoc);
  await page.keyboard.press("Escape");
  await modal.locator(".modal").waitFor({ state: "hidden" });

  // The contact in the roster → type and press Enter. (Converse 14's
  // "Start a new chat" with a JID outside the roster waits for the XEP-0191
  // blocklist, which never comes from a server without blocking: the chat
  // never opens. The test puts the recipient in the roster beforehand.)
  await page.locator(`converse-roster a.open-chat[data-jid="${opts.to}"]`).click();
  const chat = page.locator(`converse-chat[jid="${opts.to}"]`);
  await sendMessage(chat, opts.body);
  await screenshot(opts, page, "converse-chat.png");
}

runConverse(
  "converse.mjs",
  opts,
  { settings: { allow_adhoc_commands: true, show_controlbox_by_default: true }, failureShot: "converse-failure.png" },
  drive,
);
