package otlp_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/metrics/otlp"
	"github.com/adhocd/adhocd/metrics/otlp/otlptest"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// cleanEnv clears the variables these tests set, whatever the
// environment of the test run holds.
func cleanEnv(t *testing.T) {
	for _, v := range []string{"ENDPOINT", "TRACES_ENDPOINT", "METRICS_ENDPOINT", "HEADERS", "TRACES_HEADERS", "METRICS_HEADERS",
		"PROTOCOL", "TRACES_PROTOCOL", "METRICS_PROTOCOL", "COMPRESSION", "TRACES_COMPRESSION", "METRICS_COMPRESSION",
		"CERTIFICATE", "TRACES_CERTIFICATE", "METRICS_CERTIFICATE", "INSECURE", "TRACES_INSECURE", "METRICS_INSECURE"} {
		t.Setenv("OTEL_EXPORTER_OTLP_"+v, "")
	}
}

// export sends one span ("adhoc execute", adhoc.node=n) and one counter
// (runs = 2) through the exporters of c, and returns the errors of both
// exports.
func export(t *testing.T, c config.OTel) (spanErr, metricErr error) {
	t.Helper()
	ex, err := otlp.New(ctx(t), c)
	if err != nil {
		t.Fatal(err)
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	_, span := tp.Tracer("test").Start(ctx(t), "adhoc execute")
	span.SetAttributes(attribute.String("adhoc.node", "n"))
	span.End()
	spanErr = ex.Spans.ExportSpans(ctx(t), rec.Ended())

	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	runs, err := mp.Meter("test").Int64Counter("runs")
	if err != nil {
		t.Fatal(err)
	}
	runs.Add(ctx(t), 2)
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx(t), &rm); err != nil {
		t.Fatal(err)
	}
	metricErr = ex.Metrics.Export(ctx(t), &rm)
	_ = ex.Spans.Shutdown(ctx(t))
	_ = ex.Metrics.Shutdown(ctx(t))
	return spanErr, metricErr
}

// mustExport is export, failing the test on an export error.
func mustExport(t *testing.T, c config.OTel) {
	t.Helper()
	if se, me := export(t, c); se != nil || me != nil {
		t.Fatalf("export: spans: %v; metrics: %v", se, me)
	}
}

// arrived checks that the collector got the span and the counter, and
// returns the requests it saw.
func arrived(t *testing.T, col *otlptest.Collector) []otlptest.Request {
	t.Helper()
	spans := col.Spans()
	if len(spans) != 1 || spans[0].Name != "adhoc execute" || len(spans[0].Attributes) != 1 ||
		spans[0].Attributes[0].Key != "adhoc.node" || spans[0].Attributes[0].Value.GetStringValue() != "n" {
		t.Errorf("collector got spans %v, want the one span", spans)
	}
	var runs int64 = -1
	for _, m := range col.Metrics() {
		if m.Name == "runs" && len(m.GetSum().GetDataPoints()) == 1 {
			runs = m.GetSum().GetDataPoints()[0].GetAsInt()
		}
	}
	if runs != 2 {
		t.Errorf("collector got runs = %d, want 2", runs)
	}
	reqs := col.Requests()
	if len(reqs) != 2 || reqs[0].Path != otlptest.TracesPath || reqs[1].Path != otlptest.MetricsPath {
		t.Errorf("requests %+v, want one to %s and one to %s", reqs, otlptest.TracesPath, otlptest.MetricsPath)
	}
	return reqs
}

// everyRequest checks one header value on every request.
func everyRequest(t *testing.T, reqs []otlptest.Request, header, want string) {
	t.Helper()
	for _, r := range reqs {
		if got := r.Header.Get(header); got != want {
			t.Errorf("%s: %s %q, want %q", r.Path, header, got, want)
		}
	}
}

func TestHTTPFromConfig(t *testing.T) {
	cleanEnv(t)
	col := otlptest.Start(t)
	mustExport(t, config.OTel{Endpoint: col.Endpoint, Insecure: true, Headers: "Authorization=Bearer s3cret,X-Scope-OrgID=tenant%2C1"})
	reqs := arrived(t, col)
	everyRequest(t, reqs, "Authorization", "Bearer s3cret")
	everyRequest(t, reqs, "X-Scope-OrgID", "tenant,1")
	for _, r := range reqs {
		if r.Gzip {
			t.Errorf("%s gzip-compressed without compression: gzip", r.Path)
		}
	}
}

func TestHeadersFromYAMLMapping(t *testing.T) {
	cleanEnv(t)
	col := otlptest.Start(t)
	cfg, err := config.Parse([]byte("otel:\n  exporter: otlp\n  endpoint: " + col.Endpoint + "\n  insecure: true\n" +
		"  headers:\n    x-honeycomb-team: \"k3y, with=signs\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	mustExport(t, cfg.OTel)
	everyRequest(t, arrived(t, col), "X-Honeycomb-Team", "k3y, with=signs")
}

// TestEnvironmentFillsWhatConfigLeaves: with the keys empty, endpoint,
// headers and compression come from OTEL_EXPORTER_OTLP_*, the metrics
// going to their own collector by OTEL_EXPORTER_OTLP_METRICS_ENDPOINT.
func TestEnvironmentFillsWhatConfigLeaves(t *testing.T) {
	cleanEnv(t)
	traces, metrics := otlptest.Start(t), otlptest.Start(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+traces.Endpoint)
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://"+metrics.Endpoint+"/v1/metrics")
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=from%20env")
	t.Setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
	mustExport(t, config.OTel{})
	reqs := append(traces.Requests(), metrics.Requests()...)
	if len(traces.Spans()) != 1 || len(traces.Metrics()) != 0 || len(metrics.Metrics()) != 1 || len(metrics.Spans()) != 0 {
		t.Fatalf("traces collector: %d spans, %d metrics; metrics collector: %d spans, %d metrics; want 1 0 0 1",
			len(traces.Spans()), len(traces.Metrics()), len(metrics.Spans()), len(metrics.Metrics()))
	}
	everyRequest(t, reqs, "Api-Key", "from env")
	for _, r := range reqs {
		if !r.Gzip {
			t.Errorf("%s not gzip-compressed with OTEL_EXPORTER_OTLP_COMPRESSION=gzip", r.Path)
		}
	}
}

// TestConfigWinsOverEnvironment: a key set in config.yaml overrides its
// variable, headers as a whole.
func TestConfigWinsOverEnvironment(t *testing.T) {
	cleanEnv(t)
	col, elsewhere := otlptest.Start(t), otlptest.Start(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+elsewhere.Endpoint)
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=from-env,x-env-only=1")
	t.Setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
	mustExport(t, config.OTel{Endpoint: "http://" + col.Endpoint, Headers: "api-key=from-config", Compression: "none"})
	reqs := arrived(t, col)
	everyRequest(t, reqs, "Api-Key", "from-config")
	everyRequest(t, reqs, "X-Env-Only", "")
	for _, r := range reqs {
		if r.Gzip {
			t.Errorf("%s gzip-compressed although otel.compression: none", r.Path)
		}
	}
	if n := len(elsewhere.Requests()); n != 0 {
		t.Errorf("%d requests went to OTEL_EXPORTER_OTLP_ENDPOINT", n)
	}
}

func TestGzip(t *testing.T) {
	cleanEnv(t)
	col := otlptest.Start(t)
	mustExport(t, config.OTel{Endpoint: col.Endpoint, Insecure: true, Compression: "gzip"})
	for _, r := range arrived(t, col) {
		if !r.Gzip {
			t.Errorf("%s not gzip-compressed", r.Path)
		}
	}
}

// TestURLEndpoint: an endpoint URL is the base of the signal paths, and its
// http:// scheme means no TLS.
func TestURLEndpoint(t *testing.T) {
	cleanEnv(t)
	col := otlptest.Start(t)
	mustExport(t, config.OTel{Endpoint: "http://" + col.Endpoint + "/"})
	arrived(t, col)
}

// TestTLSWithCAFile: a collector whose certificate chains to otel.ca_file
// (or OTEL_EXPORTER_OTLP_CERTIFICATE) is trusted, and without it the
// export fails on the certificate.
func TestTLSWithCAFile(t *testing.T) {
	cleanEnv(t)
	t.Run("ca_file", func(t *testing.T) {
		col := otlptest.StartTLS(t)
		mustExport(t, config.OTel{Endpoint: col.Endpoint, CAFile: col.CAFile})
		arrived(t, col)
	})
	t.Run("OTEL_EXPORTER_OTLP_CERTIFICATE", func(t *testing.T) {
		col := otlptest.StartTLS(t)
		t.Setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", col.CAFile)
		mustExport(t, config.OTel{Endpoint: col.Endpoint})
		arrived(t, col)
	})
	t.Run("untrusted", func(t *testing.T) {
		col := otlptest.StartTLS(t)
		se, me := export(t, config.OTel{Endpoint: col.Endpoint})
		for _, err := range []error{se, me} {
			if err == nil || !strings.Contains(err.Error(), "certificate") {
				t.Errorf("export to an untrusted collector: %v, want a certificate error", err)
			}
		}
		if n := len(col.Requests()); n != 0 {
			t.Errorf("%d requests reached an untrusted collector", n)
		}
	})
}

func TestCAFileMissing(t *testing.T) {
	cleanEnv(t)
	_, err := otlp.New(ctx(t), config.OTel{CAFile: "/nonexistent/ca.pem"})
	if err == nil || !strings.Contains(err.Error(), "otel.ca_file") {
		t.Fatalf("New with a missing ca_file: %v", err)
	}
}

// TestGRPC: otel.protocol: grpc (or OTEL_EXPORTER_OTLP_PROTOCOL=grpc) sends
// both signals over OTLP/gRPC, with the headers as metadata, gzip when
// asked.
func TestGRPC(t *testing.T) {
	cleanEnv(t)
	t.Run("config", func(t *testing.T) {
		col := otlptest.StartGRPC(t)
		mustExport(t, config.OTel{Protocol: "grpc", Endpoint: col.Endpoint, Insecure: true, Headers: "authorization=Bearer g", Compression: "gzip"})
		reqs := arrived(t, col)
		everyRequest(t, reqs, "Authorization", "Bearer g")
		for _, r := range reqs {
			if !r.Gzip {
				t.Errorf("%s not gzip-compressed", r.Path)
			}
		}
	})
	t.Run("OTEL_EXPORTER_OTLP_PROTOCOL", func(t *testing.T) {
		col := otlptest.StartGRPC(t)
		t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
		t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer env")
		mustExport(t, config.OTel{Endpoint: "http://" + col.Endpoint})
		everyRequest(t, arrived(t, col), "Authorization", "Bearer env")
	})
}

func TestUnsupportedProtocol(t *testing.T) {
	cleanEnv(t)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
	_, err := otlp.New(ctx(t), config.OTel{})
	if err == nil || !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_PROTOCOL") || !strings.Contains(err.Error(), "http/json") {
		t.Fatalf("New with http/json: %v, want an error naming the variable and the value", err)
	}
}

// TestRefusedCollectorFailsFast: an export to a closed port returns an
// error at once instead of retrying until its deadline.
func TestRefusedCollectorFailsFast(t *testing.T) {
	cleanEnv(t)
	start := time.Now()
	se, me := export(t, config.OTel{Endpoint: otlptest.ClosedPort(t), Insecure: true})
	if se == nil || me == nil {
		t.Fatalf("export to a closed port succeeded: %v, %v", se, me)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("export to a closed port took %v", took)
	}
}

// TestConfigValidation: config.yaml refuses what the exporters could not
// use, naming the key, and a bad header never shows its value.
func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"protocol: http/json", "otel.protocol"},
		{"endpoint: collector", "otel.endpoint"},
		{"endpoint: ftp://collector:21", "otel.endpoint"},
		{"compression: zstd", "otel.compression"},
		{"timeout: -1s", "otel.timeout"},
		{`headers: "authorization"`, "otel.headers"},
		{`headers: {"bad name": s3cret}`, "otel.headers"},
		{`headers: "x-key=s3cret%zz"`, "otel.headers"},
	} {
		_, err := config.Parse([]byte("otel:\n  " + tc.yaml + "\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", tc.yaml, err, tc.want)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error shows the header's value: %v", tc.yaml, err)
		}
	}
	for _, ok := range []string{"protocol: grpc", "endpoint: https://otlp.example.com/base", "endpoint: \"[::1]:4317\"",
		"compression: gzip", "timeout: 3s", "headers: {}", `headers: "a=1,b=2"`} {
		if _, err := config.Parse([]byte("otel:\n  " + ok + "\n")); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
}
