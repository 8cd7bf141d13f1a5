package muc_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/metrics"
	"github.com/adhocd/adhocd/modules/muc"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// TestMetrics: the rooms and occupants gauges, the messages by kind and
// the stanzas refused past an occupant's rate, under the names
// docs/observability.md lists, passing promlint.
func TestMetrics(t *testing.T) {
	tel, err := metrics.New(context.Background(), config.Default(), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
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

	families, err := tel.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	mfs := map[string]*dto.MetricFamily{}
	var ours []*dto.MetricFamily
	for _, mf := range families {
		mfs[mf.GetName()] = mf
		if strings.HasPrefix(mf.GetName(), "adhocd_muc_") {
			ours = append(ours, mf)
		}
	}
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
		if got := metricValue(mfs, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(ours).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// metricValue is the sum of the samples of family name whose labels
// include want.
func metricValue(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	sum := 0.0
	for _, m := range mfs[name].GetMetric() {
		match := true
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == k && l.GetValue() == v)
			}
			match = match && found
		}
		if match {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}
