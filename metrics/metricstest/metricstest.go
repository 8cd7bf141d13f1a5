// Package metricstest is what the tests of metrics share: telemetry of
// the server's own kind for a test, and reading what it gathered the way
// Prometheus would scrape it. The modules' metrics tests and those of
// package metrics use it.
package metricstest

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/metrics"
)

// New returns telemetry on the default configuration, logging to the
// test, shut down at its cleanup. server.WithMeterProvider(tel.MeterProvider())
// gives it to a test server.
func New(t testing.TB) *metrics.Telemetry {
	t.Helper()
	tel, err := metrics.New(context.Background(), config.Default(), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel
}

// Gather returns the families tel's registry holds now, by name.
func Gather(t testing.TB, tel *metrics.Telemetry) map[string]*dto.MetricFamily {
	t.Helper()
	families, err := tel.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	mfs := make(map[string]*dto.MetricFamily, len(families))
	for _, mf := range families {
		mfs[mf.GetName()] = mf
	}
	return mfs
}

// Value returns the sum of the samples of family name whose labels include
// want: a counter's value, a gauge's, or a histogram's count; 0 if there
// is none.
func Value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
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
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// Lint runs promlint on the families whose names begin with prefix and
// fails the test with each problem; it returns how many families it read.
func Lint(t testing.TB, mfs map[string]*dto.MetricFamily, prefix string) int {
	t.Helper()
	var ours []*dto.MetricFamily
	for name, mf := range mfs {
		if strings.HasPrefix(name, prefix) {
			ours = append(ours, mf)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(ours).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	return len(ours)
}
