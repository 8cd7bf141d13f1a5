package muc_test

import (
	"testing"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/metrics/metricstest"
	"github.com/adhocd/adhocd/modules/muc"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// TestMetrics: the rooms and occupants gauges, the messages by kind and
// the stanzas refused past an occupant's rate, under the names
// docs/observability.md lists, passing promlint.
func TestMetrics(t *testing.T) {
	tel := metricstest.New(t)
	off := func(c *config.Config) { c.MUC.Enabled = false }
	mod := muc.New(muc.Options{MessageRate: 0.01, MessageBurst: 2})
	e := &env{t: t, users: map[string]bool{},
		srv: servertest.StartWith(t, []server.Option{server.WithMeterProvider(tel.MeterProvider()), server.WithModules(mod)}, off)}
	alice := e.login("alice", "laptop")
	bob := e.login("bob", "phone")
	alice.create("r", "alice")
	alice.create("s", "alice")
	bob.join("r", "bob", "")
	bob.say("r", "one")
	alice.heard("r", "bob", "one")
	bob.Write(`<message to='` + occ("r", "alice") + `' type='chat' id='pm1'><body>psst</body></message>`)
	alice.next("private message", func(s *servertest.Node) bool { return text(s, "body") == "psst" })
	bob.say("r", "three") // past the burst of 2
	bob.next("error", func(s *servertest.Node) bool { return s.Name.Local == "message" && s.Attr["type"] == "error" })

	mfs := metricstest.Gather(t, tel)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"adhocd_muc_rooms", nil, 2},
		{"adhocd_muc_occupants", nil, 3},
		{"adhocd_muc_messages_total", map[string]string{"kind": "groupchat"}, 1},
		{"adhocd_muc_messages_total", map[string]string{"kind": "private"}, 1},
		{"adhocd_muc_rate_limited_total", nil, 1},
	} {
		if got := metricstest.Value(mfs, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if n := metricstest.Lint(t, mfs, "adhocd_muc_"); n != 4 {
		t.Errorf("%d muc metric families, want 4", n)
	}
}
