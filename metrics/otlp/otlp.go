// Package otlp exports adhocd's spans and metrics over OTLP/HTTP (binary
// protobuf, POST to /v1/traces and /v1/metrics), the transport that
// otel.exporter: otlp asks for.
//
// Why not otlptracehttp and otlpmetrichttp: both link google.golang.org/grpc
// (their shared configuration code imports grpc's credentials) and
// grpc-gateway (go.opentelemetry.io/proto/otlp's collector packages carry
// gateway handlers), although an HTTP exporter uses neither. Measured on
// adhocd: the two exporters add 5.5 MB to the binary's mapped text and
// rodata and 3.6–4 MB to the idle RSS of every server, whether or not OTLP is
// configured (Go links what is imported, and the kernel maps a Go binary's
// pages nearly whole) — a fifth of an idle adhocd. What this package keeps of
// OpenTelemetry is everything but the HTTP POST: spans go through
// go.opentelemetry.io/otel/exporters/otlp/otlptrace (its span transform and
// exporter, with a Client written here); metrics through a conversion to the
// OTLP messages written here (metricpb.go), because the SDK's own is internal
// to otlpmetrichttp. The request envelopes (ExportTraceServiceRequest,
// ExportMetricsServiceRequest) are one repeated field each, written with
// protowire instead of importing the collector packages.
//
// Behaviour follows the OTLP/HTTP specification and the upstream exporters:
// 2xx is success; 429, 502, 503 and 504 are retried with exponential backoff
// (honouring Retry-After) until the export's context ends; any other status is
// an error naming it.
package otlp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Config says where to send: Endpoint is host:port of the collector's
// OTLP/HTTP receiver; Insecure uses plain HTTP instead of HTTPS.
type Config struct {
	Endpoint string
	Insecure bool
}

// NewTraceExporter returns a span exporter that POSTs to /v1/traces.
func NewTraceExporter(ctx context.Context, c Config) (sdktrace.SpanExporter, error) {
	e, err := otlptrace.New(ctx, &traceClient{poster: newPoster(c, "/v1/traces")})
	if err != nil {
		return nil, fmt.Errorf("otlp: trace exporter: %w", err)
	}
	return e, nil
}

// traceClient is otlptrace's transport: one POST per batch.
type traceClient struct{ *poster }

func (*traceClient) Start(context.Context) error { return nil }
func (t *traceClient) Stop(context.Context) error {
	t.closed.Store(true)
	return nil
}

// UploadTraces sends an ExportTraceServiceRequest: field 1, resource_spans.
func (t *traceClient) UploadTraces(ctx context.Context, spans []*tracepb.ResourceSpans) error {
	if len(spans) == 0 {
		return nil
	}
	body, err := envelope(spans)
	if err != nil {
		return err
	}
	return t.post(ctx, body)
}

// MetricExporter pushes the SDK's metric collections to /v1/metrics. Use it
// with sdkmetric.NewPeriodicReader.
type MetricExporter struct {
	*poster
}

var _ sdkmetric.Exporter = (*MetricExporter)(nil)

// NewMetricExporter returns a metric exporter that POSTs to /v1/metrics.
func NewMetricExporter(c Config) *MetricExporter {
	return &MetricExporter{poster: newPoster(c, "/v1/metrics")}
}

// Temporality is cumulative for every instrument, as in the upstream exporter.
func (*MetricExporter) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return sdkmetric.DefaultTemporalitySelector(k)
}

// Aggregation is the SDK's default for each instrument kind.
func (*MetricExporter) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}

// Export sends rm. Metrics the transform cannot express are dropped and
// reported in the error; the others are still sent.
func (m *MetricExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	pb, terr := toResourceMetrics(rm)
	body, err := envelope([]*metricpb.ResourceMetrics{pb})
	if err != nil {
		return errors.Join(terr, err)
	}
	return errors.Join(terr, m.post(ctx, body))
}

// ForceFlush has nothing to flush: Export sends synchronously.
func (*MetricExporter) ForceFlush(context.Context) error { return nil }

// Shutdown stops further exports.
func (m *MetricExporter) Shutdown(context.Context) error {
	m.closed.Store(true)
	return nil
}

// envelope encodes the Export*ServiceRequest around msgs: each message as
// field 1, length-delimited — the whole of both request types.
func envelope[M proto.Message](msgs []M) ([]byte, error) {
	var b []byte
	for _, m := range msgs {
		one, err := proto.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("otlp: encode: %w", err)
		}
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, one)
	}
	return b, nil
}

// ErrShutdown is returned by exports after Shutdown.
var ErrShutdown = errors.New("otlp: exporter shut down")

// maxResponse bounds how much of a collector's answer is read.
const maxResponse = 64 << 10

// poster POSTs protobuf bodies to one URL, retrying what OTLP says is
// retryable.
type poster struct {
	url    string
	client *http.Client
	closed atomic.Bool
}

// requestTimeout bounds one HTTP request; retries go on until the export's
// context ends.
const requestTimeout = 10 * time.Second

func newPoster(c Config, path string) *poster {
	scheme := "https://"
	if c.Insecure {
		scheme = "http://"
	}
	return &poster{url: scheme + c.Endpoint + path, client: &http.Client{Timeout: requestTimeout}}
}

// Backoff between retries: doubling from first to most.
const (
	firstBackoff = 500 * time.Millisecond
	mostBackoff  = 10 * time.Second
)

func (p *poster) post(ctx context.Context, body []byte) error {
	if p.closed.Load() {
		return ErrShutdown
	}
	wait := firstBackoff
	for {
		retryAfter, err := p.once(ctx, body)
		if err == nil || retryAfter < 0 {
			return err
		}
		d := max(wait, retryAfter)
		wait = min(2*wait, mostBackoff)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}

// once makes one request. retryAfter is negative when the error is final,
// and otherwise the least wait the collector asked for (0 if it said none).
func (p *poster) once(ctx context.Context, body []byte) (retryAfter time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return -1, fmt.Errorf("otlp: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("User-Agent", "adhocd")
	resp, err := p.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return -1, fmt.Errorf("otlp: POST %s: %w", p.url, err)
		}
		return 0, fmt.Errorf("otlp: POST %s: %w", p.url, err) // connection trouble: retry
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return 0, nil
	}
	err = fmt.Errorf("otlp: POST %s: %s%s", p.url, resp.Status, describe(answer))
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return retryAfterHeader(resp.Header.Get("Retry-After")), err
	}
	return -1, err
}

// describe renders a collector's error body for a log line: printable text
// as it is (collectors answer text or a google.rpc.Status), bounded.
func describe(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, strings.ToValidUTF8(string(b), ""))
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return ": " + s
}

// retryAfterHeader reads a Retry-After of seconds (the form collectors use);
// anything else counts as no advice.
func retryAfterHeader(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, time.Minute)
}
