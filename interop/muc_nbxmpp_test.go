package interop_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
)

// nbMUCPresence is a SELF or OCCUPANT line of nbxmpp_muc.py: a room
// presence as nbxmpp's MUC module parsed it.
type nbMUCPresence struct {
	Type        string   `json:"type"`
	Codes       []string `json:"codes"`
	Affiliation string   `json:"affiliation"`
	Role        string   `json:"role"`
	Nick        string   `json:"nick"`
	JID         *string  `json:"jid"`
	OccupantID  string   `json:"occupant_id"`
}

// nbMUCMessage is a GROUPCHAT line: a groupchat message as nbxmpp parsed
// it.
type nbMUCMessage struct {
	Nick       string `json:"nick"`
	Body       string `json:"body"`
	OriginID   string `json:"origin_id"`
	OccupantID string `json:"occupant_id"`
	Delayed    bool   `json:"delayed"`
	SentID     string `json:"sent_id"`
}

// nbRoomInfo is the ROOMINFO line: the room's disco#info as nbxmpp's
// DiscoInfo reads it.
type nbRoomInfo struct {
	Identities  []string `json:"identities"`
	Features    []string `json:"features"`
	FormTypes   []string `json:"form_types"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Subject     string   `json:"subject"`
	Occupants   string   `json:"occupants"`
	IsMUC       bool     `json:"is_muc"`
}

// TestNbxmppMUC has nbxmpp 4.2.2 (Gajim 1.7's library) create, configure,
// use and leave a room as Gajim does (testdata/nbxmpp_muc.py): the room's
// disco#info first (item-not-found: it does not exist), the join presence
// Gajim sends, the self-presence with 110 and 201 as nbxmpp's MUC module
// parses it, the configuration form read and submitted with a public
// room's values through MUC.request_config and set_config; then a Go
// occupant joins, a groupchat message goes each way (nbxmpp sees its own
// reflected with its origin-id), nbxmpp sets the subject, reads the
// room's disco#info with the muc#roominfo form through the Discovery
// module, and leaves (110 again). The Go occupant checks what it got from
// nbxmpp: the message, the subject and the unavailable presence.
func TestNbxmppMUC(t *testing.T) {
	requireNbxmpp(t)
	srv := servertest.Start(t)
	const alicePW, bobPW = "gajim-muc-alice", "gajim-muc-bob"
	alice := srv.AddUser("alice", alicePW)
	srv.AddUser("bob", bobPW)
	room := "gajim@" + conferenceDomain
	body, reply, subject := randomBody(t), randomBody(t), "subject "+randomBody(t)
	roomName, roomDesc := "Room "+randomHex(t, 3), "about "+randomHex(t, 3)

	start := time.Now()
	s := startScript(t, 60*time.Second, "nbxmpp_muc.py", withDebug(append(serverArgs(t, srv),
		"--jid", alice, "--password", alicePW,
		"--room", room, "--nick", "alice", "--other-nick", "bob",
		"--body", body, "--reply", reply, "--subject", subject,
		"--room-name", roomName, "--room-desc", roomDesc,
		"--timeout", "40",
	), "NBXMPP_DEBUG")...)
	lines, ok := s.linesUntil("CONFIGURED", 30*time.Second)
	if !ok {
		s.finish()
		t.Fatal("nbxmpp did not configure the room")
	}

	// The Go occupant enters once the room is configured, sees nbxmpp's
	// message, answers, sees the subject change and nbxmpp leave.
	bob, _ := enterMUC(t, srv, "bob", bobPW, room, "bob")
	msg := bob.groupchat("alice", body)
	if msg.OccupantID == nil || msg.OccupantID.ID == "" || msg.Delay != nil {
		t.Errorf("bob got nbxmpp's message %+v, want it live with an occupant id", msg)
	}
	bob.say(reply)
	subj := bob.next("the subject from alice", func(m mucStanza) bool {
		return m.XMLName.Local == "message" && m.From == room+"/alice" && m.Subject != nil
	})
	if *subj.Subject != subject || subj.Body != nil {
		t.Errorf("bob got the subject %q (body %v), want %q without a body", *subj.Subject, subj.Body, subject)
	}
	gone := bob.presenceOf("alice", true)
	if gone.User == nil || gone.User.Item.Role != "none" || slices.Contains(gone.codes(), "110") {
		t.Errorf("bob saw alice leave with %+v, want role none and no 110", gone)
	}
	lines = append(lines, s.finish()...)
	t.Logf("nbxmpp's group chat ran for %s", time.Since(start).Round(time.Millisecond))

	selves := map[string]nbMUCPresence{}
	messages := map[string]nbMUCMessage{}
	var occupant nbMUCPresence
	var info nbRoomInfo
	var infoError map[string]any
	var subjectSeen struct{ Text, Author string }
	var configForm struct {
		FormType string   `json:"form_type"`
		Fields   []string `json:"fields"`
	}
	ok = scanLines(lines, func(word, rest string) {
		switch word {
		case "SELF":
			label, p := cutJSON[nbMUCPresence](t, word, rest)
			selves[label] = p
		case "OCCUPANT":
			_, occupant = cutJSON[nbMUCPresence](t, word, "- "+rest)
		case "GROUPCHAT":
			label, m := cutJSON[nbMUCMessage](t, word, rest)
			messages[label] = m
		case "SUBJECT":
			_, subjectSeen = cutJSON[struct{ Text, Author string }](t, word, "- "+rest)
		case "ROOMINFO":
			_, info = cutJSON[nbRoomInfo](t, word, "- "+rest)
		case "INFO_ERROR":
			_, infoError = cutJSON[map[string]any](t, word, "- "+rest)
		case "CONFIG":
			_, configForm = cutJSON[struct {
				FormType string   `json:"form_type"`
				Fields   []string `json:"fields"`
			}](t, word, "- "+rest)
		case "ERROR", "TIMEOUT":
			t.Errorf("nbxmpp_muc.py: %s %s", word, rest)
		}
	})
	if !ok {
		t.Error("nbxmpp_muc.py did not print OK")
	}

	if infoError["condition"] != "item-not-found" {
		t.Errorf("disco#info of the room before it exists: %v, want item-not-found", infoError)
	}
	created := selves["created"]
	if created.Type != "available" || !slices.Equal(created.Codes, []string{"110", "201"}) || created.Affiliation != "owner" ||
		created.Role != "moderator" || created.Nick != "alice" || created.JID == nil || *created.JID != alice || created.OccupantID == "" {
		t.Errorf("self-presence at creation as nbxmpp parsed it: %+v, want 110 and 201, owner, moderator, alice, her JID %s (nbxmpp keeps it bare), an occupant id", created, alice)
	}
	if configForm.FormType != "http://jabber.org/protocol/muc#roomconfig" {
		t.Errorf("configuration form type %q", configForm.FormType)
	}
	for _, f := range []string{"muc#roomconfig_roomname", "muc#roomconfig_roomdesc", "muc#roomconfig_publicroom", "muc#roomconfig_membersonly", "muc#roomconfig_whois"} {
		if !slices.Contains(configForm.Fields, f) {
			t.Errorf("configuration form %v lacks %s, which Gajim sets", configForm.Fields, f)
		}
	}
	if occupant.Nick != "bob" || occupant.Affiliation != "none" || occupant.Role != "participant" || occupant.OccupantID == "" || occupant.OccupantID == created.OccupantID {
		t.Errorf("bob as nbxmpp saw him enter: %+v, want bob, none, participant, an occupant id of his own", occupant)
	}
	if r := messages["reflection"]; r.Nick != "alice" || r.Body != body || r.OriginID == "" || r.OriginID != r.SentID || r.OccupantID != created.OccupantID || r.Delayed {
		t.Errorf("nbxmpp's own message reflected: %+v, want from alice with the origin-id sent and alice's occupant id %q", r, created.OccupantID)
	}
	if m := messages["bob"]; m.Nick != "bob" || m.Body != reply || m.OccupantID != occupant.OccupantID || m.Delayed {
		t.Errorf("bob's message as nbxmpp parsed it: %+v, want from bob with his occupant id %q", m, occupant.OccupantID)
	}
	if msg.OccupantID != nil && msg.OccupantID.ID != created.OccupantID {
		t.Errorf("bob got alice's message with occupant id %q, nbxmpp saw hers as %q", msg.OccupantID.ID, created.OccupantID)
	}
	if subjectSeen.Text != subject || subjectSeen.Author != "alice" {
		t.Errorf("subject as nbxmpp parsed it: %+v, want %q by alice", subjectSeen, subject)
	}

	// disco#info after the configuration Gajim submitted: public,
	// persistent, open, semi-anonymous, the name and description given.
	js, _ := json.Marshal(info)
	if !slices.Equal(info.Identities, []string{"conference/text/" + roomName}) || !info.IsMUC {
		t.Errorf("room info %s: want the one identity conference/text/%s", js, roomName)
	}
	for _, f := range []string{mucNSJoin, "muc_public", "muc_persistent", "muc_open", "muc_semianonymous", "muc_unmoderated", "muc_unsecured"} {
		if !slices.Contains(info.Features, f) {
			t.Errorf("room info features %v lack %s", info.Features, f)
		}
	}
	if !slices.Contains(info.FormTypes, "http://jabber.org/protocol/muc#roominfo") || info.Name != roomName ||
		info.Description != roomDesc || info.Subject != subject || info.Occupants != "2" {
		t.Errorf("room info %s: want the muc#roominfo form with name %q, description %q, subject %q, 2 occupants", js, roomName, roomDesc, subject)
	}

	if left := selves["left"]; left.Type != "unavailable" || !slices.Equal(left.Codes, []string{"110"}) || left.Role != "none" {
		t.Errorf("self-presence of leaving as nbxmpp parsed it: %+v, want unavailable with 110, role none", left)
	}
}
