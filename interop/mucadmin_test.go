package interop_test

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules/muc"
	"github.com/adhocd/adhocd/servertest"
)

// The group chat service's administration commands (modules/muc's
// commands.go) run by two clients' XEP-0050 requesters on the service's
// JID, conference.localhost.

const mucService = "conference.localhost"

// mucCommands are the service's commands and their names, as an
// administrator's command list has them.
var mucCommands = map[string]string{
	muc.CommandNode("list-rooms"):      "List Rooms",
	muc.CommandNode("destroy-room"):    "Destroy a Room",
	muc.CommandNode("set-affiliation"): "Set an Affiliation in a Room",
}

// checkMUCCommands fails the test unless listed (jid, node and name of
// each) is exactly mucCommands at the service.
func checkMUCCommands(t *testing.T, who string, listed []struct{ JID, Node, Name string }) {
	t.Helper()
	got := map[string]string{}
	for _, c := range listed {
		if c.JID != mucService {
			t.Errorf("%s: command %s listed at %s", who, c.Node, c.JID)
		}
		got[c.Node] = c.Name
	}
	if len(got) != len(mucCommands) {
		t.Errorf("%s: the service lists %v, want %v", who, got, mucCommands)
	}
	for node, name := range mucCommands {
		if got[node] != name {
			t.Errorf("%s: %s is named %q, want %q", who, node, got[node], name)
		}
	}
}

// mucAdminResponse is a RESPONSE of slixmpp_mucadmin.py: the reply as
// slixmpp_adhoc_requester.py describes it, and the rows of a multi-item
// result.
type mucAdminResponse struct {
	pyResponse
	Items []map[string]string `json:"items"`
}

// TestSlixmppMUCAdmin: slixmpp 1.8.3's xep_0050, logged in as a server
// administrator, lists the service's commands and runs list-rooms (the
// room xep_0045 made, its name, occupants and flags), set-affiliation
// (the other user becomes an admin of the room, and both clients see its
// presence as moderator with the reason) and destroy-room (both get the
// destroy presence with the reason and alternate venue, with 110, and the
// room is gone); the room's owner, no administrator, sees no command and
// is refused list-rooms.
func TestSlixmppMUCAdmin(t *testing.T) {
	requireSlixmpp(t)
	srv := servertest.Start(t, func(c *config.Config) { c.Admins = []string{"admin@localhost"} })
	jids, args := addAccounts(t, srv, "mucadmin", "admin", "owner", "other")
	roomName, reason := "Tea "+randomHex(t, 4)+" ☕", "closing time "+randomHex(t, 4)
	const room, venue = "tea@" + mucService, "pub@" + mucService
	args = append(args, "--room", room, "--room-name", roomName, "--reason", reason, "--venue", venue, "--timeout", "50")
	lines := runScript(t, 70*time.Second, "slixmpp_mucadmin.py", withDebug(args, "MUCADMIN_DEBUG")...)

	commands := map[string][]struct{ JID, Node, Name string }{}
	responses := map[string]mucAdminResponse{}
	var affiliations, destroyed, refused []string
	ok := scanLines(lines, func(word, rest string) {
		switch word {
		case "COMMANDS":
			role, v := cutJSON[[]struct{ JID, Node, Name string }](t, word, rest)
			commands[role] = v
		case "RESPONSE":
			label, v := cutJSON[mucAdminResponse](t, word, rest)
			responses[label] = v
		case "AFFILIATION":
			affiliations = append(affiliations, rest)
		case "DESTROYED":
			destroyed = append(destroyed, rest)
		case "REFUSED":
			refused = append(refused, rest)
		}
	})
	if !ok {
		t.Fatal("the script did not print OK")
	}

	checkMUCCommands(t, "the administrator", commands["admin"])
	if c, listed := commands["owner"]; !listed || len(c) != 0 {
		t.Errorf("the owner, no administrator, sees %+v", c)
	}

	list := responses["list-rooms"]
	wantRow := map[string]string{"jid": room, "name": roomName, "occupants": "2", "persistent": "0", "public": "1"}
	if list.Status != "completed" || len(list.Items) != 1 || !maps.Equal(list.Items[0], wantRow) {
		t.Errorf("list-rooms: %+v, want completed with the row %v", list, wantRow)
	}

	form := responses["set-affiliation-form"]
	if form.Status != "executing" || len(form.Forms) != 1 {
		t.Fatalf("set-affiliation's form: %+v", form)
	}
	for _, want := range []pyField{
		{Var: "room", Type: "jid-single", Required: true},
		{Var: "jid", Type: "jid-single", Required: true},
		{Var: "affiliation", Type: "list-single", Required: true, Options: []string{"owner", "admin", "member", "none", "outcast"}},
		{Var: "reason", Type: "text-single"},
	} {
		if !slices.ContainsFunc(form.Forms[0].Fields, func(f pyField) bool {
			return f.Var == want.Var && f.Type == want.Type && f.Required == want.Required && (want.Options == nil || slices.Equal(f.Options, want.Options))
		}) {
			t.Errorf("set-affiliation's form %+v lacks %+v", form.Forms[0].Fields, want)
		}
	}
	checkNotes(t, "set-affiliation", responses["set-affiliation"], "other@localhost is now admin of "+room)
	reasonJSON, _ := json.Marshal(reason)
	wantAff := `{"affiliation": "admin", "reason": ` + string(reasonJSON) + `, "role": "moderator"}`
	if want := []string{"owner " + wantAff, "other " + wantAff}; !slices.Equal(affiliations, want) {
		t.Errorf("AFFILIATION lines\n%s\nwant\n%s", quoteLines(affiliations), quoteLines(want))
	}

	checkNotes(t, "destroy-room", responses["destroy-room"], room+" was destroyed; 2 occupants were told")
	wantDestroy := `{"codes": ["110"], "jid": "` + venue + `", "reason": ` + string(reasonJSON) + `}`
	if want := []string{"owner " + wantDestroy, "other " + wantDestroy}; !slices.Equal(destroyed, want) {
		t.Errorf("DESTROYED lines\n%s\nwant\n%s", quoteLines(destroyed), quoteLines(want))
	}
	if want := []string{`owner-list-rooms {"condition": "forbidden", "type": "cancel"}`}; !slices.Equal(refused, want) {
		t.Errorf("REFUSED lines %q, want %q", refused, want)
	}
	mucRoomGone(t, srv, jids[0], room)
}

// checkNotes fails the test unless r completed with the one info note
// text.
func checkNotes(t *testing.T, label string, r mucAdminResponse, text string) {
	t.Helper()
	if r.Status != "completed" || len(r.Notes) != 1 || !slices.Equal(r.Notes[0], []string{"info", text}) {
		t.Errorf("%s: status %q notes %q, want completed with the note %q", label, r.Status, r.Notes, text)
	}
}

// mucRoomGone fails the test unless disco#info of room is item-not-found,
// asked as user (a bare JID of srv whose password is mucadmin-<local>).
func mucRoomGone(t *testing.T, srv *servertest.Server, user, room string) {
	t.Helper()
	local, _, _ := strings.Cut(user, "@")
	c := srv.Dial(local, "mucadmin-"+local, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := c.IQ(ctx, `<iq type='get' id='gone' to='`+room+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if err == nil || !strings.Contains(got, "item-not-found") {
		t.Errorf("disco#info of %s after destroy-room: %s %v", room, got, err)
	}
}

// TestNbxmppMUCAdmin: nbxmpp 4.2.2's AdHoc module, logged in as a server
// administrator the way Gajim logs in, lists the service's commands and
// runs list-rooms (a multi-item result: the columns and the room two
// mellium clients are in) and destroy-room with the form filled in as
// Gajim's form widget does; both occupants get the destroy presence with
// the reason and alternate venue.
func TestNbxmppMUCAdmin(t *testing.T) {
	requireNbxmpp(t)
	srv := servertest.Start(t, func(c *config.Config) { c.Admins = []string{"admin@localhost"} })
	jids, _ := addAccounts(t, srv, "mucadmin", "admin", "owner", "other")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const wait = 10 * time.Second
	roomName, reason := "Den "+randomHex(t, 4), "moving on "+randomHex(t, 4)
	const room, venue = "den@" + mucService, "lounge@" + mucService

	// The owner creates the room with a name, the other joins.
	occupants := map[string]*servertest.Client{}
	for _, nick := range []string{"owner", "other"} {
		c := srv.Dial(nick, "mucadmin-"+nick, "")
		occupants[nick] = c
		if err := c.SendRaw(ctx, `<presence to='`+room+`/`+nick+`'><x xmlns='http://jabber.org/protocol/muc'/></presence>`); err != nil {
			t.Fatal(err)
		}
		c.Next(wait, func(s servertest.Stanza) bool {
			return s.Name == "presence" && s.Attrs["from"] == room+"/"+nick && strings.Contains(s.XML, `code="110"`)
		})
		if nick == "owner" {
			if _, err := c.IQ(ctx, `<iq type='set' id='cfg' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#owner'>`+
				`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>`+
				`<field var='muc#roomconfig_roomname'><value>`+roomName+`</value></field></x></query></iq>`); err != nil {
				t.Fatal(err)
			}
		}
	}

	lines := runScript(t, 60*time.Second, "nbxmpp_mucadmin.py", withDebug(append(serverArgs(t, srv),
		"--jid", jids[0], "--password", "mucadmin-admin",
		"--service", mucService, "--room", room, "--reason", reason, "--venue", venue, "--timeout", "40",
	), "MUCADMIN_DEBUG")...)
	rep := parseNbReport(t, lines)
	if !rep.ok {
		t.Error("the script did not print OK")
	}
	if len(rep.errors) != 0 {
		t.Errorf("errors: %v", rep.errors)
	}
	checkMUCCommands(t, "nbxmpp", rep.commands)

	type rows struct {
		Reported []string              `json:"reported"`
		Items    []map[string][]string `json:"items"`
	}
	var list rows
	for _, line := range lines {
		if strings.HasPrefix(line, "RESPONSE list-rooms ") {
			_, list = cutJSON[rows](t, "RESPONSE", strings.TrimPrefix(line, "RESPONSE "))
		}
	}
	if r := rep.responses["list-rooms"]; r.Status != "completed" || r.Form == nil || r.Form.Type != "result" {
		t.Errorf("list-rooms: %+v, want completed with a result form", r)
	}
	if want := []string{"jid", "name", "occupants", "persistent", "public"}; !slices.Equal(list.Reported, want) {
		t.Errorf("list-rooms columns %q, want %q", list.Reported, want)
	}
	wantRow := map[string][]string{"jid": {room}, "name": {roomName}, "occupants": {"2"}, "persistent": {"0"}, "public": {"1"}}
	if len(list.Items) != 1 || len(list.Items[0]) != len(wantRow) {
		t.Fatalf("list-rooms rows %v, want one: %v", list.Items, wantRow)
	}
	for k, v := range wantRow {
		if !slices.Equal(list.Items[0][k], v) {
			t.Errorf("list-rooms row's %s is %q, want %q", k, list.Items[0][k], v)
		}
	}

	form := rep.responses["destroy-room-form"]
	if form.Status != "executing" || form.Default != "complete" || form.Form == nil {
		t.Fatalf("destroy-room's form: %+v", form)
	}
	for _, want := range []pyField{{Var: "room", Type: "jid-single", Required: true}, {Var: "reason", Type: "text-single"}, {Var: "venue", Type: "jid-single"}} {
		if !slices.ContainsFunc(form.Form.Fields, func(f pyField) bool {
			return f.Var == want.Var && f.Type == want.Type && f.Required == want.Required
		}) {
			t.Errorf("destroy-room's form %+v lacks %+v", form.Form.Fields, want)
		}
	}
	done := rep.responses["destroy-room"]
	if want := room + " was destroyed; 2 occupants were told"; done.Status != "completed" || len(done.Notes) != 1 || !slices.Equal(done.Notes[0], []string{"info", want}) {
		t.Errorf("destroy-room: %+v, want completed with the note %q", done, want)
	}
	for nick, c := range occupants {
		p := c.Next(wait, func(s servertest.Stanza) bool {
			return s.Name == "presence" && s.Attrs["from"] == room+"/"+nick && s.Attrs["type"] == "unavailable"
		})
		var got struct {
			X struct {
				Destroy struct {
					JID    string `xml:"jid,attr"`
					Reason string `xml:"reason"`
				} `xml:"http://jabber.org/protocol/muc#user destroy"`
			} `xml:"http://jabber.org/protocol/muc#user x"`
		}
		if err := p.Decode(&got); err != nil || got.X.Destroy.JID != venue || got.X.Destroy.Reason != reason {
			t.Errorf("%s: destroy presence %s (%v)", nick, p.XML, err)
		}
	}
	mucRoomGone(t, srv, jids[0], room)
}
