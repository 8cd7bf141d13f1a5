package otlp_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"

	"github.com/adhocd/adhocd/metrics/otlp"
	"github.com/adhocd/adhocd/metrics/otlp/otlptest"
	"github.com/adhocd/adhocd/servertest"
)

func ctx(t *testing.T) context.Context { return servertest.Context(t, 10*time.Second) }

func TestSpansArrive(t *testing.T) {
	col := otlptest.Start(t, nil)
	exp, err := otlp.NewTraceExporter(ctx(t), otlp.Config{Endpoint: col.Endpoint, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
	_, span := tp.Tracer("test").Start(ctx(t), "adhoc execute")
	span.SetAttributes(attribute.String("adhoc.node", "n"), attribute.Int64("adhoc.stage", 2))
	span.End()
	if err := tp.Shutdown(ctx(t)); err != nil { // flushes the batch
		t.Fatal(err)
	}
	spans := col.Spans()
	if len(spans) != 1 || spans[0].Name != "adhoc execute" {
		t.Fatalf("collector got %v, want the one span", spans)
	}
	attrs := map[string]string{}
	for _, kv := range spans[0].Attributes {
		attrs[kv.Key] = kv.Value.String()
	}
	if !strings.Contains(attrs["adhoc.node"], `"n"`) || !strings.Contains(attrs["adhoc.stage"], "2") {
		t.Errorf("attributes %v", attrs)
	}
	if spans[0].EndTimeUnixNano <= spans[0].StartTimeUnixNano || len(spans[0].TraceId) != 16 || len(spans[0].SpanId) != 8 {
		t.Errorf("span times or ids wrong: %v", spans[0])
	}
}

func TestMetricsArrive(t *testing.T) {
	col := otlptest.Start(t, nil)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(
		otlp.NewMetricExporter(otlp.Config{Endpoint: col.Endpoint, Insecure: true}))))
	m := mp.Meter("test")
	runs, err := m.Int64Counter("runs")
	if err != nil {
		t.Fatal(err)
	}
	took, err := m.Float64Histogram("took")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		runs.Add(ctx(t), 2, metric.WithAttributes(attribute.String("node", "n")))
		took.Record(ctx(t), float64(i))
	}
	if err := mp.Shutdown(ctx(t)); err != nil { // the reader's last collection
		t.Fatal(err)
	}
	var sum, count float64
	for _, m := range col.Metrics() {
		switch m.Name {
		case "runs":
			pts := m.GetSum().GetDataPoints()
			if len(pts) != 1 || !m.GetSum().IsMonotonic || m.GetSum().AggregationTemporality != metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE {
				t.Fatalf("runs: %v", m)
			}
			sum = float64(pts[0].GetAsInt())
		case "took":
			pts := m.GetHistogram().GetDataPoints()
			if len(pts) != 1 {
				t.Fatalf("took: %v", m)
			}
			count = float64(pts[0].Count)
			if pts[0].GetSum() != 0+1+2 {
				t.Errorf("took sum %v, want 3", pts[0].GetSum())
			}
		}
	}
	if sum != 6 || count != 3 {
		t.Errorf("collector has runs=%v took.count=%v, want 6 and 3", sum, count)
	}
}

func TestRetriesWhatOTLPSaysIsRetryable(t *testing.T) {
	col := otlptest.Start(t, func(path string, n int) (int, http.Header, string) {
		if n == 1 {
			return http.StatusServiceUnavailable, http.Header{"Retry-After": {"0"}}, "busy"
		}
		return http.StatusOK, nil, ""
	})
	exp := otlp.NewMetricExporter(otlp.Config{Endpoint: col.Endpoint, Insecure: true})
	if err := exp.Export(ctx(t), &metricdata.ResourceMetrics{}); err != nil {
		t.Fatalf("export after one 503: %v", err)
	}
	if n := col.Posts("/v1/metrics"); n != 2 {
		t.Errorf("%d requests, want 2 (one retry)", n)
	}
}

func TestFinalErrorNamesTheStatus(t *testing.T) {
	col := otlptest.Start(t, func(string, int) (int, http.Header, string) {
		return http.StatusBadRequest, nil, "no such tenant\n"
	})
	exp := otlp.NewMetricExporter(otlp.Config{Endpoint: col.Endpoint, Insecure: true})
	err := exp.Export(ctx(t), &metricdata.ResourceMetrics{})
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "no such tenant") {
		t.Fatalf("error %v, want the status and the collector's text", err)
	}
	if n := col.Posts("/v1/metrics"); n != 1 {
		t.Errorf("%d requests, want 1 (400 is final)", n)
	}
}

func TestRetriesStopWithTheContext(t *testing.T) {
	col := otlptest.Start(t, func(string, int) (int, http.Header, string) {
		return http.StatusTooManyRequests, nil, ""
	})
	exp := otlp.NewMetricExporter(otlp.Config{Endpoint: col.Endpoint, Insecure: true})
	c, cancel := context.WithTimeout(ctx(t), 800*time.Millisecond)
	defer cancel()
	err := exp.Export(c, &metricdata.ResourceMetrics{})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "429") {
		t.Fatalf("error %v, want 429 and the deadline", err)
	}
	if n := col.Posts("/v1/metrics"); n < 2 {
		t.Errorf("%d requests, want retries before the deadline", n)
	}
}

func TestShutdownStopsExports(t *testing.T) {
	col := otlptest.Start(t, nil)
	exp := otlp.NewMetricExporter(otlp.Config{Endpoint: col.Endpoint, Insecure: true})
	if err := exp.Shutdown(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := exp.Export(ctx(t), &metricdata.ResourceMetrics{}); !errors.Is(err, otlp.ErrShutdown) {
		t.Fatalf("export after shutdown: %v", err)
	}
	if n := col.Posts("/v1/metrics"); n != 0 {
		t.Errorf("%d requests after shutdown", n)
	}
}
