package upload_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/metrics"
	"github.com/adhocd/adhocd/modules/upload"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// TestMetrics: the service's counters and its gauge move with what it
// does, under the names docs/upload.md lists, and pass promlint.
func TestMetrics(t *testing.T) {
	tel, err := metrics.New(context.Background(), config.Default(), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
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

	families, err := tel.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	mfs := map[string]*dto.MetricFamily{}
	var ours []*dto.MetricFamily
	for _, mf := range families {
		mfs[mf.GetName()] = mf
		if strings.HasPrefix(mf.GetName(), "adhocd_upload_") {
			ours = append(ours, mf)
		}
	}
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
		if got := value(mfs, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if err := e.srv.Accounts().Delete(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted account's file and slot are counted", func() bool {
		families, err := tel.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		mfs := map[string]*dto.MetricFamily{}
		for _, mf := range families {
			mfs[mf.GetName()] = mf
		}
		return value(mfs, "adhocd_upload_removed_total", map[string]string{"reason": "account"}) == 2 && value(mfs, "adhocd_upload_bytes", nil) == 0
	})
	problems, err := promlint.NewWithMetricFamilies(ours).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	if len(ours) < 5 {
		t.Fatalf("only %d upload metric families", len(ours))
	}
}

// value is the sum of the samples of family name whose labels include
// want.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	sum := 0.0
	for _, m := range mfs[name].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && labels[k] == v
		}
		if match {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}
