// xmppjs.mjs logs in to an XMPP server with xmpp.js (@xmpp/client), runs two
// XEP-0133 admin commands through raw XEP-0050 IQs and sends one chat
// message, printing what it saw, one fact a line, for interop/xmppjs_test.go:
//
//	MECHANISM <SASL mechanism xmpp.js chose>
//	ONLINE_USERS <value of onlineusersnum>
//	ADD_USER_FORM <field vars of the add-user form, comma-separated>
//	ADD_USER <status of the submitted command>
//	SENT
//	OK
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

const { values: opts } = parseArgs({
  options: {
    service: { type: "string" },
    domain: { type: "string", default: "localhost" },
    user: { type: "string" },
    password: { type: "string" },
    "new-user": { type: "string" },
    "new-password": { type: "string" },
    to: { type: "string" },
    body: { type: "string" },
    timeout: { type: "string", default: "30" },
  },
});
for (const name of ["service", "user", "password", "new-user", "new-password", "to", "body"]) {
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

async function run() {
  await xmpp.start();
  await xmpp.send(xml("presence"));

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
