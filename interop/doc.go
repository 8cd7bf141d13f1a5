// Package interop holds tests of adhocd against XMPP clients nobody here
// wrote, so that the server is checked against someone else's reading of the
// RFCs (RFC 6120, RFC 6121, RFC 7395) and XEPs (XEP-0050, XEP-0133,
// XEP-0160, XEP-0280) and not only against the mellium.im client in
// server/servertest. It drives slixmpp, nbxmpp, Gajim, poezio and Profanity
// (gajim_test.go, poezio_test.go, profanity_test.go, under Xvfb or tmux as
// their users run them), Converse.js in headless Chromium and xmpp.js on Node
// (converse_test.go, xmppjs_test.go); matrix_test.go checks the README's
// client matrix against those tests and the versions installed.
//
// The tests run Debian's python3-slixmpp under /usr/bin/python3 (not whatever
// python3 is first on PATH, which may lack Debian's packages). Each test
// starts a real server on loopback with servertest and runs a script from
// testdata against it, with a deadline.
//
// Besides a chat message between two slixmpp clients (slixmpp_test.go),
// adhoc_test.go checks XEP-0050 both ways with slixmpp's xep_0050 plugin: as
// a requester it runs the three-stage wizard of adhoc/adhoctest (next, prev,
// complete, cancel) against the server, and as a provider a slixmpp bot
// offers a command on its full JID that adhocd's own Go requester
// (adhoc.Requester), logged in as another user, runs through the server.
// The slixmpp scripts share their login code in testdata/common.py, the
// nbxmpp scripts theirs and their step runner in testdata/nbxmpp_common.py,
// and both their flags in testdata/flags.py; the tests share the accounts
// and flags they give a script and the reading of its lines (lines_test.go).
//
// nbxmpp_test.go runs admin commands and the wizard through nbxmpp's AdHoc
// module (Debian's python3-nbxmpp, Gajim's library, on a GLib main loop the
// way Gajim runs it), and slixmpp_bots_test.go checks how the two usual
// kinds of slixmpp bot (giving up on failed_all_auth, or on the first
// failed_auth) log in with channel binding offered and with
// c2s.channel_binding off. Without python3-nbxmpp the nbxmpp test is
// skipped, or fails under CI, like the slixmpp tests.
//
// The IM features (issue 17) are each driven by the plugin an app would
// use: carbons_test.go (xep_0280), pep_test.go (xep_0163, xep_0084,
// xep_0172, xep_0118, an OMEMO bundle through xep_0060, and nbxmpp's
// avatars and XEP-0402 bookmarks as Gajim stores them), userdata_test.go
// (xep_0054, xep_0049, xep_0048, xep_0012), blocking_test.go (xep_0191),
// mam_test.go (xep_0313 and nbxmpp's MAM as Gajim syncs), sm_test.go
// (xep_0198 resumption, xep_0115 caps), csi_test.go (xep_0352),
// privatepep_test.go (xep_0223), avatars_test.go (XEP-0398: xep_0084 and
// xep_0153 clients see one avatar) and bookmarks_test.go (XEP-0402 items
// read and written through xep_0048 in private storage and in PEP).
//
// Group chat, file upload and components (issue 19): muc_test.go runs
// slixmpp's own xep_0045 (create, configure, join, kick) and
// muc_slixmpp_test.go its ban, history, xep_0249 invitations, subject and
// password flows; muc_nbxmpp_test.go joins a room through nbxmpp's MUC
// module as Gajim does, muc_profanity_test.go types /join in Profanity under
// tmux, and muc_converse_test.go joins and talks in a room from Converse.js
// over WebSocket; muc_clients_test.go holds what those share. The MUC
// service's own admin commands run from slixmpp's xep_0050 and nbxmpp's
// AdHoc module (mucadmin_test.go). upload_test.go PUTs a file through
// slixmpp's xep_0363 and GETs the same bytes back, and component_test.go
// connects a slixmpp ComponentXMPP that exchanges messages, disco and pings
// with a slixmpp user.
//
// Federation (issue 20): s2speer_test.go starts Debian's Prosody 0.12 on
// 127.0.0.2 and ejabberd 23.01 on 127.0.0.3, each as its own system user
// with a config of its own, a DNS stub for the .test names and an
// /etc/hosts block that is removed again. s2s_adhocd_test.go federates
// adhocd with each of them, by dialback and by SASL EXTERNAL with a test CA,
// and has slixmpp users on both sides subscribe to each other, exchange
// presence and messages, query disco and log out (testdata/s2s_chat.py,
// s2s_subscribe.py). s2s_nbxmpp_test.go does the same with an nbxmpp user
// on adhocd, as Gajim would. s2s_converse_test.go has a Converse.js user on
// adhocd, over WebSocket, add a slixmpp user of each peer in its Add Contact
// dialog, chat with it and log out (js/s2s_converse.mjs,
// testdata/s2s_converse_peer.py).
//
// On a developer machine without python3-slixmpp the tests are skipped. When
// the environment variable CI is set (as .ci/run does with CI=true) a missing
// slixmpp is a failure instead, so CI never passes by silently skipping.
package interop
