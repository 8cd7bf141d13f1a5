// xmppjs.mjs logs in to an XMPP server with xmpp.js (@xmpp/client), lists
// the commands of the server JID (disco#items on the commands node), runs
// two XEP-0133 admin commands and the three-stage wizard through raw
// XEP-0050 IQs and sends one chat message, printing what it saw, one fact a
// line, for interop/xmppjs_test.go:
//
//	MECHANISM <SASL mechanism xmpp.js chose>
//	COMMANDS <JSON: [{jid, node, name}] of the items listed>
//	ONLINE_USERS <value of onlineusersnum>
//	ADD_USER_FORM <field vars of the add-user form, comma-separated>
//	ADD_USER <status of the submitted command>
//	RESPONSE <label> <JSON: the <command/> reply, see describe>
//	SENT
//	OK
//
// The wizard's RESPONSE labels are stage1 (execute), stage2 (next with the
// stage-1 answers), stage1-again (prev), stage2-again (next), stage3 (next
// with the stage-2 answers) and completed (complete with the comment).
//
// The service is xmpp://host:port (TCP with STARTTLS; trust the server's
// certificate with NODE_EXTRA_CA_CERTS) or ws://host:port/path (RFC 7395;
// Node 20 needs --experimental-websocket). Every step is bounded by
// --timeout seconds in all.

import { parseArgs } from "node:util";
import { client, xml } from "@xmpp/client";

const NS_COMMANDS = "http://jabber.org/protocol/commands";
const NS_ADMIN = "http://jabber.org/protocol/admin";
const NS_DATA = "jabber:x:data";
const NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items";

const { values: opts } = parseArgs({
  options: {
    service: { type: "string" },
    domain: { type: "string", default: "localhost" },
    user: { type: "string" },
    password: { type: "string" },
    "new-user": { type: "string" },
    "new-password": { type: "string" },
    "wizard-node": { type: "string" },
    "wizard-name": { type: "string" },
    "wizard-color": { type: "string" },
    "wizard-contact": { type: "string" },
    "wizard-comment": { type: "string" },
    to: { type: "string" },
    body: { type: "string" },
    timeout: { type: "string", default: "30" },
  },
});
const required = ["service", "user", "password", "new-user", "new-password", "to", "body"];
const wizardOpts = ["wizard-node", "wizard-name", "wizard-color", "wizard-contact", "wizard-comment"];
for (const name of [...required, ...wizardOpts]) {
  if (!opts[name]) {
    console.error(`xmppjs.mjs: --${name} is required`);
    process.exit(2);
  }
}

const timeoutMs = Number(opts.timeout) * 1000;
const deadline = setTimeout(() => {
  console.error(`xmppjs.mjs: gave up after ${opts.timeout}s`);
  process.exit(3);
}, timeoutMs);

if (opts.service.startsWith("ws") && typeof globalThis.WebSocket === "undefined") {
  console.error("xmppjs.mjs: this Node has no WebSocket (run Node 20 with --experimental-websocket)");
  process.exit(2);
}

const xmpp = client({
  service: opts.service,
  domain: opts.domain,
  resource: "xmppjs",
  // Choose the mechanism here to report it; xmpp.js would pick the same one
  // (its first supported mechanism the server offers, PLAIN only on a
  // secure stream).
  credentials: async (authenticate, mechanisms) => {
    const mechanism = mechanisms.find((m) => m !== "PLAIN");
    if (!mechanism) {
      throw new Error(`no SCRAM mechanism offered (xmpp.js supports ${mechanisms.join(", ")})`);
    }
    console.log(`MECHANISM ${mechanism}`);
    await authenticate({ username: opts.user, password: opts.password }, mechanism);
  },
});
// A test run never reconnects: a dropped stream is a failure.
xmpp.reconnect.stop();
// The server closes the connection right after its </stream:stream>, so
// the TLS close_notify xmpp.js writes then may meet a reset: no failure.
let stopping = false;
xmpp.on("error", (err) => {
  console.error(`xmppjs.mjs: client error${stopping ? " while closing" : ""}: ${err?.message ?? err}`);
});

// command sends an XEP-0050 command IQ to the server JID and returns the
// <command/> of the result; an IQ error rejects.
async function command(node, attrs = {}, ...children) {
  const reply = await xmpp.iqCaller.request(
    xml("iq", { type: "set", to: opts.domain }, xml("command", { xmlns: NS_COMMANDS, node, ...attrs }, ...children)),
    timeoutMs,
  );
  const cmd = reply.getChild("command", NS_COMMANDS);
  if (!cmd) {
    throw new Error(`no <command/> in the reply to ${node}: ${reply}`);
  }
  return cmd;
}

// fieldValue returns the first value of the form field var in x.
function fieldValue(x, name) {
  const field = x?.getChildren("field").find((f) => f.attrs.var === name);
  return field?.getChildText("value") ?? null;
}

// submitForm is a data form of type submit: answers maps a field var to
// its values.
function submitForm(answers) {
  return xml(
    "x",
    { xmlns: NS_DATA, type: "submit" },
    ...Object.entries(answers).map(([v, values]) =>
      xml("field", { var: v }, ...values.map((value) => xml("value", {}, value))),
    ),
  );
}

// describe is what a requester reads of a <command/> reply: its status,
// session, the actions offered (in document order, and the execute
// attribute), the notes, and each data form field by field (a field
// without a type is text-single, XEP-0004 §3.3).
function describe(cmd) {
  const actions = cmd.getChild("actions");
  const order = actions ? actions.children.filter((c) => typeof c !== "string").map((c) => c.name) : [];
  return {
    node: cmd.attrs.node,
    sessionid: cmd.attrs.sessionid ?? "",
    status: cmd.attrs.status,
    actions: [...order].sort(),
    action_order: order,
    execute: actions ? (actions.attrs.execute ?? null) : null,
    notes: cmd.getChildren("note").map((n) => [n.attrs.type ?? "info", n.text()]),
    forms: cmd.getChildren("x", NS_DATA).map((x) => ({
      type: x.attrs.type,
      title: x.getChildText("title") ?? "",
      instructions: x.getChildText("instructions") ?? "",
      fields: x.getChildren("field").map((f) => ({
        var: f.attrs.var,
        type: f.attrs.type ?? "text-single",
        label: f.attrs.label ?? "",
        required: f.getChild("required") !== undefined,
        values: f.getChildren("value").map((v) => v.text()),
        options: f.getChildren("option").map((o) => o.getChildText("value")),
      })),
    })),
  };
}

// runWizard runs the three-stage wizard: execute, next with the stage-1
// answers, prev (the server shows stage 1 again, answers filled in), next
// with them again, next with the stage-2 answers, complete with the
// comment (one <value/> a line, as text-multi wants).
async function runWizard() {
  const node = opts["wizard-node"];
  const report = (label, cmd) => {
    console.log(`RESPONSE ${label} ${JSON.stringify(describe(cmd))}`);
    return cmd;
  };
  const stage1 = report("stage1", await command(node, { action: "execute" }));
  const sessionid = stage1.attrs.sessionid;
  const step = (action, ...form) => command(node, { action, sessionid }, ...form);
  const answers1 = { name: [opts["wizard-name"]], color: [opts["wizard-color"]] };
  report("stage2", await step("next", submitForm(answers1)));
  const again = report("stage1-again", await step("prev"));
  // Submit what the server filled in again, as a client's form would.
  const x = again.getChild("x", NS_DATA);
  const refilled = Object.fromEntries(
    ["name", "color"].map((v) => [v, x?.getChildren("field").find((f) => f.attrs.var === v)?.getChildren("value").map((e) => e.text()) ?? []]),
  );
  report("stage2-again", await step("next", submitForm(refilled)));
  report("stage3", await step("next", submitForm({ contact: [opts["wizard-contact"]], notify: ["true"] })));
  report("completed", await step("complete", submitForm({ comment: opts["wizard-comment"].split("\n") })));
}

async function run() {
  await xmpp.start();
  await xmpp.send(xml("presence"));

  // The command list: disco#items on the commands node (XEP-0050 §2.2).
  const items = await xmpp.iqCaller.request(
    xml("iq", { type: "get", to: opts.domain }, xml("query", { xmlns: NS_DISCO_ITEMS, node: NS_COMMANDS })),
    timeoutMs,
  );
  const listed = items
    .getChild("query", NS_DISCO_ITEMS)
    .getChildren("item")
    .map((i) => ({ jid: i.attrs.jid, node: i.attrs.node, name: i.attrs.name }));
  console.log(`COMMANDS ${JSON.stringify(listed)}`);

  // A one-stage command: execute answers completed with a result form.
  const online = await command(`${NS_ADMIN}#get-online-users-num`, { action: "execute" });
  if (online.attrs.status !== "completed") {
    throw new Error(`get-online-users-num: status ${online.attrs.status}, want completed: ${online}`);
  }
  console.log(`ONLINE_USERS ${fieldValue(online.getChild("x", NS_DATA), "onlineusersnum")}`);

  // A form command: execute returns the form, which is submitted filled in
  // with action complete in the same session.
  const addNode = `${NS_ADMIN}#add-user`;
  const stage = await command(addNode, { action: "execute" });
  const form = stage.getChild("x", NS_DATA);
  if (stage.attrs.status !== "executing" || !form || form.attrs.type !== "form") {
    throw new Error(`add-user: want an executing command with a form: ${stage}`);
  }
  const vars = form.getChildren("field").map((f) => f.attrs.var).filter(Boolean);
  console.log(`ADD_USER_FORM ${vars.join(",")}`);
  const answers = {
    FORM_TYPE: fieldValue(form, "FORM_TYPE") ?? NS_ADMIN,
    accountjid: `${opts["new-user"]}@${opts.domain}`,
    password: opts["new-password"],
    "password-verify": opts["new-password"],
  };
  const submitted = xml(
    "x",
    { xmlns: NS_DATA, type: "submit" },
    ...vars.filter((v) => v in answers).map((v) => xml("field", { var: v }, xml("value", {}, answers[v]))),
  );
  const done = await command(addNode, { action: "complete", sessionid: stage.attrs.sessionid }, submitted);
  const note = done.getChild("note");
  console.log(`ADD_USER ${done.attrs.status}${note ? ` ${note.attrs.type}: ${note.text()}` : ""}`);

  await runWizard();

  await xmpp.send(xml("message", { type: "chat", to: opts.to, id: "xmppjs-1" }, xml("body", {}, opts.body)));
  console.log("SENT");

  stopping = true;
  await xmpp.stop();
  console.log("OK");
}

run().then(
  () => {
    clearTimeout(deadline);
  },
  (err) => {
    console.error(`xmppjs.mjs: ${err?.stack ?? err}`);
    process.exit(1);
  },
);
