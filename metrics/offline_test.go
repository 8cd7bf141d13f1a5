package metrics_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/metrics/metricstest"
	"github.com/adhocd/adhocd/storage"
)

// TestOfflineUsageGauges: the offline gauges show what the store keeps, as
// its own counters say, before and after delivery, and the configured
// total; promlint accepts them.
func TestOfflineUsageGauges(t *testing.T) {
	srv, tel := instrumented(t, nil, nil, func(c *config.Config) { c.Limits.MaxOfflineTotalBytes = 1 << 20 })
	u, ok := srv.Store().(storage.OfflineUsageReporter)
	if !ok {
		t.Fatal("the server's store does not report its offline usage")
	}
	if err := tel.ObserveOffline(u, func() int64 { return srv.Config().Limits.MaxOfflineTotalBytes }); err != nil {
		t.Fatal(err)
	}
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	alice := srv.RawLogin("alice", "wonderland", "raw")
	for i := range 3 {
		alice.Write(fmt.Sprintf(`<message id='m%d' type='chat' to='bob@localhost'><body>%s</body></message>`, i, strings.Repeat("x", 500)))
	}
	alice.Write(`<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	alice.Expect(`id="p1"`)
	bytes, msgs := u.OfflineUsage()
	if msgs != 3 || bytes < 1500 {
		t.Fatalf("the store counts %d bytes in %d messages, want 3 messages of over 500 bytes", bytes, msgs)
	}
	mfs := scrape(t, tel)
	if got := metricstest.Value(mfs, "adhocd_offline_bytes", nil); got != float64(bytes) {
		t.Errorf("adhocd_offline_bytes %v, want %d", got, bytes)
	}
	if got := metricstest.Value(mfs, "adhocd_offline_messages", nil); got != 3 {
		t.Errorf("adhocd_offline_messages %v, want 3", got)
	}
	if got := metricstest.Value(mfs, "adhocd_offline_limit_bytes", nil); got != 1<<20 {
		t.Errorf("adhocd_offline_limit_bytes %v, want %d", got, 1<<20)
	}

	bob := srv.RawLogin("bob", "builder", "phone")
	bob.Write(`<presence/>`)
	bob.Expect(`(?s)(<body>x+</body>.*){3}`)
	mfs = scrape(t, tel)
	if got := metricstest.Value(mfs, "adhocd_offline_bytes", nil); got != 0 {
		t.Errorf("adhocd_offline_bytes after delivery %v, want 0", got)
	}
	gathered, err := tel.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(gathered).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "adhocd_offline") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}
