package upload_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/adhocd/adhocd/metrics/metricstest"
	"github.com/adhocd/adhocd/modules/upload"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// TestMetrics: the service's counters and its gauge move with what it
// does, under the names docs/upload.md lists, and pass promlint.
func TestMetrics(t *testing.T) {
	tel := metricstest.New(t)
	e := &env{t: t, clock: newClock(), users: map[string]bool{}, dir: t.TempDir()}
	e.mod = upload.New(upload.Options{Listen: "127.0.0.1:0", Dir: e.dir, Now: e.clock.Now, MaxFileBytes: 1000})
	e.srv = servertest.StartWith(t, []server.Option{server.WithMeterProvider(tel.MeterProvider()), server.WithModules(e.mod)})
	e.http = clientTo(e.mod.Addr().String(), nil)

	c := e.login("alice")
	put, _ := slot(t, c, "m.txt", 700, "")
	e.put(put, make([]byte, 700), "")
	e.do(http.MethodGet, put, nil)
	slot(t, c, "open.txt", 10, "")
	c.IQ("get", service, requestXML("big.bin", "1001", ""))
	c.IQ("get", service, requestXML("", "1", ""))

	mfs := metricstest.Gather(t, tel)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"adhocd_upload_slots_total", map[string]string{"outcome": "granted"}, 2},
		{"adhocd_upload_slots_total", map[string]string{"outcome": "too-large"}, 1},
		{"adhocd_upload_slots_total", map[string]string{"outcome": "bad-request"}, 1},
		{"adhocd_upload_uploads_total", nil, 1},
		{"adhocd_upload_uploaded_bytes_total", nil, 700},
		{"adhocd_upload_downloads_total", nil, 1},
		{"adhocd_upload_bytes", nil, 710},
	} {
		if got := metricstest.Value(mfs, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if err := e.srv.Accounts().Delete(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted account's file and slot are counted", func() bool {
		mfs := metricstest.Gather(t, tel)
		return metricstest.Value(mfs, "adhocd_upload_removed_total", map[string]string{"reason": "account"}) == 2 && metricstest.Value(mfs, "adhocd_upload_bytes", nil) == 0
	})
	if n := metricstest.Lint(t, metricstest.Gather(t, tel), "adhocd_upload_"); n < 5 {
		t.Fatalf("only %d upload metric families", n)
	}
}
