package main_test

import (
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/adhocd/adhocd/servertest"
)

// What the shipped server advertises, compared in full with what it
// implements (issue 17: "disco and stream features advertise exactly what
// is implemented"). The real binary runs with the module set cmd/adhocd
// composes (modules/defaults, the default configuration); the test reads
// the stream features before TLS, after it and after authentication, and
// the disco#info of the server JID and of the account's bare JID, and
// compares each, sorted, with the tables below. A feature advertised and
// not in a table, or in a table and not advertised, is a failure: adding
// a feature to the server means adding its row here, with the test that
// shows it works.

// advertised is one thing the server advertises and the test that shows
// it is implemented (package.Test, or the test in this file).
type advertised struct{ what, proof string }

// streamBeforeTLS are the features of a new stream on the c2s port:
// STARTTLS is required (c2s.require_tls, the default) and XEP-0115 caps
// ride on every stream's features (XEP-0115 §6.3; their 'ver' is checked
// against the server's disco#info below).
var streamBeforeTLS = []advertised{
	{"{http://jabber.org/protocol/caps}c hash=sha-1 node=https://github.com/adhocd/adhocd", "disco.TestServerCaps"},
	{"{urn:ietf:params:xml:ns:xmpp-tls}starttls", "TestAdvertisedFeatures (the stream goes on over TLS), router.TestLoginMechanisms"},
	{"{urn:ietf:params:xml:ns:xmpp-tls}starttls/required", "c2s.TestSASLFailures/auth_before_STARTTLS_when_TLS_is_required"},
}

// streamAfterTLS are the features of the stream restarted over TLS: the
// SASL mechanisms (RFC 6120 §6, the -PLUS ones with XEP-0440 channel
// binding).
var streamAfterTLS = []advertised{
	{"{http://jabber.org/protocol/caps}c hash=sha-1 node=https://github.com/adhocd/adhocd", "disco.TestServerCaps"},
	{"{urn:ietf:params:xml:ns:xmpp-sasl}mechanisms", "router.TestLoginMechanisms"},
	{"{urn:ietf:params:xml:ns:xmpp-sasl}mechanisms/mechanism=PLAIN", "router.TestLoginMechanisms/PLAIN"},
	{"{urn:ietf:params:xml:ns:xmpp-sasl}mechanisms/mechanism=SCRAM-SHA-1", "router.TestLoginMechanisms/SCRAM-SHA-1"},
	{"{urn:ietf:params:xml:ns:xmpp-sasl}mechanisms/mechanism=SCRAM-SHA-1-PLUS", "router.TestLoginMechanisms/SCRAM-SHA-1-PLUS"},
	{"{urn:ietf:params:xml:ns:xmpp-sasl}mechanisms/mechanism=SCRAM-SHA-256", "router.TestLoginMechanisms/SCRAM-SHA-256"},
	{"{urn:ietf:params:xml:ns:xmpp-sasl}mechanisms/mechanism=SCRAM-SHA-256-PLUS", "router.TestLoginMechanisms/SCRAM-SHA-256-PLUS"},
	{"{urn:xmpp:sasl-cb:0}sasl-channel-binding", "auth.TestChannelBindingAndDowngrade"},
	{"{urn:xmpp:sasl-cb:0}sasl-channel-binding/channel-binding type=tls-exporter", "auth.TestChannelBindingAndDowngrade"},
	{"{urn:xmpp:sasl-cb:0}sasl-channel-binding/channel-binding type=tls-server-end-point", "auth.TestChannelBindingAndDowngrade"},
}

// streamAfterAuth are the features of the authenticated stream: resource
// binding, the optional legacy session, stream management (XEP-0198),
// roster versioning (RFC 6121 §2.6), client state indication (XEP-0352).
var streamAfterAuth = []advertised{
	{"{http://jabber.org/protocol/caps}c hash=sha-1 node=https://github.com/adhocd/adhocd", "disco.TestServerCaps"},
	{"{urn:ietf:params:xml:ns:xmpp-bind}bind", "router.TestLoginMechanisms/requested_resource"},
	{"{urn:ietf:params:xml:ns:xmpp-session}session", "router.TestDiscoPingVersion (legacy session accepted)"},
	{"{urn:ietf:params:xml:ns:xmpp-session}session/optional", "router.TestDiscoPingVersion"},
	{"{urn:xmpp:csi:0}csi", "csi.TestCSIGolden, csi.TestFeature"},
	{"{urn:xmpp:features:rosterver}ver", "router.TestRoster (versioning), server.TestModuleCapabilities"},
	{"{urn:xmpp:sm:3}sm", "c2s.TestSMGolden, c2s.TestSMResume"},
}

// serverInfo is the disco#info of the server JID: its identity, then its
// features.
var serverInfo = []advertised{
	{"identity server/im adhocd", "router.TestDiscoPingVersion"},
	{"http://jabber.org/protocol/commands", "commands.TestDiscovery, commands.TestWizardOverTCP"},
	{"http://jabber.org/protocol/disco#info", "router.TestDiscoPingVersion"},
	{"http://jabber.org/protocol/disco#items", "router.TestDiscoPingVersion, TestAdvertisedFeatures (the MUC service item)"},
	{"jabber:iq:last", "last.TestLastServer"},
	{"jabber:iq:private", "private.TestPrivate"},
	{"jabber:iq:version", "router.TestDiscoPingVersion"},
	{"msgoffline", "router.TestOfflineMessages, offline.TestOfflineTTL"},
	{"urn:xmpp:blocking", "blocking.TestBlocklistExamples"},
	// urn:xmpp:carbons:rules:0 (XEP-0280 §6.2) is rightly absent: the
	// copying of errors answering an eligible message is not done.
	{"urn:xmpp:carbons:2", "carbons.TestCarbonsGolden, carbons.TestCarbons"},
	{"urn:xmpp:ping", "router.TestDiscoPingVersion"},
	{"vcard-temp", "vcard.TestVCard"},
}

// accountInfo is the disco#info of the account's own bare JID (XEP-0030
// on a bare JID, XEP-0163 §9.1 for PEP, XEP-0313 §9 for MAM).
var accountInfo = []advertised{
	{"identity account/registered", "disco.TestAccountBareJID"},
	{"identity pubsub/pep", "pep.TestPublishRetrieveAccess"},
	{"http://jabber.org/protocol/disco#info", "disco.TestAccountBareJID"},
	{"http://jabber.org/protocol/disco#items", "pep.TestPublishRetrieveAccess (the nodes a requester may read)"},
	{"http://jabber.org/protocol/pubsub", "pep.TestPEPGolden"},
	{"http://jabber.org/protocol/pubsub#access-open", "pep.TestPublishRetrieveAccess"},
	{"http://jabber.org/protocol/pubsub#access-presence", "pep.TestPublishRetrieveAccess"},
	{"http://jabber.org/protocol/pubsub#access-whitelist", "pep.TestPublishRetrieveAccess, pep.TestPEPGolden"},
	{"http://jabber.org/protocol/pubsub#auto-create", "pep.TestPEPGolden, pep.TestPublishRetrieveAccess"},
	{"http://jabber.org/protocol/pubsub#config-node", "pep.TestPublishOptionsAndOwner"},
	{"http://jabber.org/protocol/pubsub#config-node-max", "pep.TestLimits (max_items max)"},
	{"http://jabber.org/protocol/pubsub#create-and-configure", "pep.TestPEPGolden (XEP-0060 §8.1.2)"},
	{"http://jabber.org/protocol/pubsub#create-nodes", "pep.TestPEPGolden (XEP-0060 §8.1)"},
	{"http://jabber.org/protocol/pubsub#delete-items", "pep.TestNotificationsFollowCaps (retract)"},
	{"http://jabber.org/protocol/pubsub#delete-nodes", "pep.TestPublishOptionsAndOwner"},
	{"http://jabber.org/protocol/pubsub#filtered-notifications", "pep.TestNotificationsFollowCaps, pep.TestPEPGolden"},
	{"http://jabber.org/protocol/pubsub#item-ids", "pep.TestPublishRetrieveAccess"},
	{"http://jabber.org/protocol/pubsub#last-published", "pep.TestPEPGolden, pep.TestLastItemOnSubscription"},
	{"http://jabber.org/protocol/pubsub#persistent-items", "pep.TestPEPGolden (items after a restart)"},
	{"http://jabber.org/protocol/pubsub#presence-notifications", "pep.TestNotificationsFollowCaps"},
	{"http://jabber.org/protocol/pubsub#publish", "pep.TestPEPGolden"},
	{"http://jabber.org/protocol/pubsub#publish-options", "pep.TestPublishOptionsAndOwner"},
	{"http://jabber.org/protocol/pubsub#purge-nodes", "pep.TestPublishOptionsAndOwner"},
	{"http://jabber.org/protocol/pubsub#retract-items", "pep.TestNotificationsFollowCaps"},
	{"http://jabber.org/protocol/pubsub#retrieve-items", "pep.TestPublishRetrieveAccess, pep.TestPEPGolden"},
	{"jabber:iq:last", "last.TestLastAccount"},
	{"urn:xmpp:bookmarks:1#compat", "bookmarks.TestBookmarksConversion"},
	{"urn:xmpp:bookmarks:1#compat-pep", "bookmarks.TestBookmarksConversion"},
	{"urn:xmpp:mam:2", "mam.TestMAMGolden, mam.TestArchiveAndQuery"},
	// XEP-0313 §9 makes #extended stand for before-id, after-id, ids,
	// flipped pages and the archive metadata query; the first three are
	// tested, <flip-page/> is ignored and <metadata/> is
	// service-unavailable (see the report of this change).
	{"urn:xmpp:mam:2#extended", "mam.TestArchiveAndQuery (before-id, after-id, ids)"},
	{"urn:xmpp:pep-vcard-conversion:0", "avatars.TestAvatarConversion"},
	{"urn:xmpp:sid:0", "mam.TestMAMGolden, mam.TestArchiveAndQuery"},
	{"vcard-temp", "vcard.TestVCard"},
}

// serverItems are the disco#items of the server JID: the group chat
// service (muc.enabled is on by default).
var serverItems = []advertised{
	{"item conference.localhost Chatrooms", "muc.TestServerItemsListService, muc.TestServiceInfo"},
}

// whats lists the first column of a table.
func whats(tab []advertised) []string {
	out := make([]string, 0, len(tab))
	for _, a := range tab {
		out = append(out, a.what)
	}
	sort.Strings(out)
	return out
}

// compare fails the test with the difference of got and want, both sorted.
func compare(t *testing.T, what string, got []string, want []advertised) {
	t.Helper()
	sort.Strings(got)
	w := whats(want)
	if slices.Equal(got, w) {
		return
	}
	var missing, extra []string
	for _, s := range got {
		if !slices.Contains(w, s) {
			extra = append(extra, s)
		}
	}
	for _, s := range w {
		if !slices.Contains(got, s) {
			missing = append(missing, s)
		}
	}
	t.Errorf("%s differs from the table:\n  advertised, not in the table (a test that shows it, or it goes): %q\n  in the table, not advertised (implemented and hidden, or the row goes): %q",
		what, extra, missing)
}

// featureLines flattens <stream:features/>: each child as
// "{namespace}local" with its attributes ('ver', the caps hash, aside),
// and each of its children as "parent/local", with "=text" when it has
// text and its attributes.
func featureLines(f *servertest.Node) (lines []string, capsVer string) {
	var walk func(prefix string, n *servertest.Node)
	walk = func(prefix string, n *servertest.Node) {
		s := prefix + n.Name.Local
		if prefix == "" {
			s = "{" + n.Name.Space + "}" + n.Name.Local
		}
		var attrs []string
		for k, v := range n.Attr {
			if k == "ver" && n.Name.Space == "http://jabber.org/protocol/caps" {
				capsVer = v
				continue
			}
			attrs = append(attrs, k+"="+v)
		}
		sort.Strings(attrs)
		line := s
		if len(attrs) > 0 {
			line += " " + strings.Join(attrs, " ")
		}
		if txt := strings.TrimSpace(n.Text); txt != "" {
			line += "=" + txt
		}
		lines = append(lines, line)
		for _, k := range n.Kids {
			walk(s+"/", k)
		}
	}
	for _, k := range f.Kids {
		walk("", k)
	}
	return lines, capsVer
}

// features parses the <stream:features/> at the end of what a stream
// (re)start received.
func features(t *testing.T, got string) *servertest.Node {
	t.Helper()
	i := strings.LastIndex(got, "<stream:features")
	if i < 0 {
		t.Fatalf("no stream features in %q", got)
	}
	els := servertest.ParseXML(t, got[i:])
	if len(els) != 1 {
		t.Fatalf("stream features %q", got[i:])
	}
	return els[0]
}

// discoLines lists a disco#info answer's identities ("identity
// category/type name") and features, or a disco#items answer's items
// ("item jid name").
func discoLines(t *testing.T, answer string) (lines []string, ident []string, feats []string) {
	t.Helper()
	var iq *servertest.Node
	for _, el := range servertest.ParseXML(t, answer) {
		if el.Name.Local == "iq" {
			iq = el
		}
	}
	if iq == nil || iq.Attr["type"] != "result" || len(iq.Kids) != 1 {
		t.Fatalf("disco answer %q", answer)
	}
	for _, k := range iq.Kids[0].Kids {
		switch k.Name.Local {
		case "identity":
			lines = append(lines, strings.TrimSpace("identity "+k.Attr["category"]+"/"+k.Attr["type"]+" "+k.Attr["name"]))
			ident = append(ident, k.Attr["category"]+"/"+k.Attr["type"]+"/"+k.Attr["xml:lang"]+"/"+k.Attr["name"])
		case "feature":
			lines = append(lines, k.Attr["var"])
			feats = append(feats, k.Attr["var"])
		case "item":
			lines = append(lines, strings.Join(strings.Fields("item "+k.Attr["jid"]+" "+k.Attr["node"]+" "+k.Attr["name"]), " "))
		default:
			// A XEP-0128 form would be part of the caps hash; there is
			// none, and one appearing needs a row of its own.
			lines = append(lines, "{"+k.Name.Space+"}"+k.Name.Local)
		}
	}
	return lines, ident, feats
}

// capsHash is the XEP-0115 §5.1 SHA-1 verification string of identities
// (category/type/lang/name) and features.
func capsHash(ident, feats []string) string {
	ident, feats = slices.Clone(ident), slices.Clone(feats)
	sort.Strings(ident)
	sort.Strings(feats)
	s := strings.Join(ident, "<") + "<" + strings.Join(feats, "<") + "<"
	sum := sha1.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// TestAdvertisedFeatures: the real binary, with the modules cmd/adhocd
// ships and its default configuration, advertises in its stream features
// (before TLS, after TLS, after authentication) and in the disco#info of
// its JID and of an account's bare JID exactly the tables above; the caps
// hash every stream carries is that of the server's disco#info.
func TestAdvertisedFeatures(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir)
	if out, err := runCmd(t, bin, "pw\n", "user", "add", "--config", cfg, "alice@localhost"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	_, addrs, logs := startAdhocd(t, bin, cfg)
	addr := next(t, addrs, logs)
	tlsCfg := clientTLS(t, dir)

	// Before TLS, and after it on the same connection.
	r := servertest.DialRaw(t, addr)
	r.Write(servertest.Header)
	before, ver1 := featureLines(features(t, r.Expect(`</stream:features>`)))
	compare(t, "the stream features before TLS", before, streamBeforeTLS)
	r.Write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	r.Expect(`<proceed`)
	tc := tls.Client(r.Conn, tlsCfg)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	secured := servertest.NewRaw(t, tc)
	secured.Write(servertest.Header)
	afterTLS, ver2 := featureLines(features(t, secured.Expect(`</stream:features>`)))
	compare(t, "the stream features after TLS", afterTLS, streamAfterTLS)

	// After authentication; then bound, the disco#info of the server
	// and of the account, the disco#items of the server.
	c := servertest.DialRaw(t, addr)
	afterAuth, ver3 := featureLines(features(t, c.Authenticate(tlsCfg, "alice", "pw")))
	compare(t, "the stream features after authentication", afterAuth, streamAfterAuth)
	c.Write(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>`)
	c.Expect(`</iq>`)
	query := func(id, to, ns string) string {
		c.Write(`<iq type='get' id='` + id + `' to='` + to + `'><query xmlns='http://jabber.org/protocol/` + ns + `'/></iq>`)
		return c.Expect(`id=["']` + id + `["'](?s:.*)</iq>`)
	}
	srvLines, ident, feats := discoLines(t, query("d1", "localhost", "disco#info"))
	compare(t, "the disco#info of localhost", srvLines, serverInfo)
	acctLines, _, _ := discoLines(t, query("d2", "alice@localhost", "disco#info"))
	compare(t, "the disco#info of alice@localhost", acctLines, accountInfo)
	items, _, _ := discoLines(t, query("d3", "localhost", "disco#items"))
	compare(t, "the disco#items of localhost", items, serverItems)

	want := capsHash(ident, feats)
	for i, v := range []string{ver1, ver2, ver3} {
		if v != want {
			t.Errorf("stream %d: caps ver %q, want %q, the hash of the server's disco#info", i+1, v, want)
		}
	}
}
