// Package adhoc implements XEP-0050 Ad-Hoc Commands, both sides, usable with
// or without the adhocd server.
//
// The provider side (Provider) keeps a registry of commands per responder JID
// and answers <command/> IQs: execute, next, prev, complete and cancel, with
// <actions/> in schema order, notes, XEP-0004 forms and every XEP-0050 error
// with its specific child (malformed-action, bad-action, bad-locale,
// bad-payload, bad-sessionid, session-expired). Its API follows slixmpp's
// xep_0050 plugin: AddCommand(jid, node, name, handler) becomes AddCommand
// with a Command value whose Stages and Complete are the handlers; the
// session store replaces slixmpp's set_backend.
//
// One leniency, as in Prosody: next on a command's last stage, where only
// complete is offered, is taken as complete after the same validation,
// because clients (poezio 0.14) submit single-stage forms with next; prev
// on the first stage stays bad-action.
//
// Sessions are plain data (node, requester, stage, submitted values,
// timestamps), never closures, so a Store can keep them outside the process.
// A session is bound to the requester's full JID and to its node; access is
// checked at every stage; ids come from crypto/rand and ids the requester
// invents are refused; one request runs at a time per session. The default
// store is an expiring LRU (hashicorp/golang-lru/v2 expirable) bounded in
// size, per requester, and in time, that remembers finished ids so that they
// answer session-expired rather than bad-sessionid. The store that keeps
// sessions across a restart, in a bucket of the server's bbolt file behind
// that LRU, is package storage/adhocsessions: this package and its
// requester link no database.
//
// Commands are local by default: with WithLocal, a requester of another
// domain (another server's user, over federation) neither sees nor runs a
// command unless it sets Command.Remote, whatever its Allow says, so that
// Anyone() never opens a command to the whole network silently; Allow
// still decides for a Remote command.
//
// The requester side (Requester) lists and runs commands on any JID over a
// mellium.im/xmpp session, in slixmpp's terms: get_commands, start_command,
// continue_command, complete_command, cancel_command.
//
// Forms are mellium.im/xmpp/form values. This package adds only what commands
// need and that package lacks: validation of a submission against the stage's
// form (required fields, list options, JIDs, booleans), pre-filling a form
// with earlier answers for prev, and result forms with <reported/> and <item/>.
package adhoc
