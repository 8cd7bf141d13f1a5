// Package otlptest is an OTLP collector for tests: it listens on loopback,
// over OTLP/HTTP (plain or TLS) or OTLP/gRPC, decodes what exporters send to
// it, and keeps the spans, the metrics and each request's headers for
// assertions.
package otlptest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // a gRPC collector accepts gzip
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/protobuf/proto"
)

// Signal paths of OTLP/HTTP; a gRPC request is recorded under the same
// path, so that assertions read alike for both transports.
const (
	TracesPath  = "/v1/traces"
	MetricsPath = "/v1/metrics"
)

// Request is what the collector saw of one export request.
type Request struct {
	// Path is TracesPath or MetricsPath.
	Path string
	// Header holds the request's HTTP headers (gRPC: its metadata, with
	// canonical names).
	Header http.Header
	// Gzip is true when the body came gzip-compressed.
	Gzip bool
}

// Collector receives OTLP requests.
type Collector struct {
	// Endpoint is host:port, for otel.endpoint.
	Endpoint string
	// CAFile, for a collector started with StartTLS, is a PEM file holding
	// the collector's self-signed certificate, for otel.ca_file.
	CAFile string

	mu       sync.Mutex
	spans    []*tracepb.ResourceSpans
	metrics  []*metricpb.ResourceMetrics
	requests []Request
}

// Start runs a plain OTLP/HTTP collector on 127.0.0.1 until the test ends.
func Start(t *testing.T) *Collector {
	t.Helper()
	c := &Collector{}
	srv := httptest.NewServer(http.HandlerFunc(c.serveHTTP))
	t.Cleanup(srv.Close)
	c.Endpoint = strings.TrimPrefix(srv.URL, "http://")
	return c
}

// StartTLS runs an OTLP/HTTP collector over TLS on 127.0.0.1 until the
// test ends, with a certificate made for the test (for 127.0.0.1 and
// localhost) and written to CAFile.
func StartTLS(t *testing.T) *Collector {
	t.Helper()
	cert, certPEM := selfSigned(t)
	c := &Collector{CAFile: filepath.Join(t.TempDir(), "collector-ca.pem")}
	if err := os.WriteFile(c.CAFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(c.serveHTTP))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are what some tests check
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c.Endpoint = strings.TrimPrefix(srv.URL, "https://")
	return c
}

// StartGRPC runs a plain OTLP/gRPC collector on 127.0.0.1 until the test
// ends.
func StartGRPC(t *testing.T) *Collector {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &Collector{Endpoint: ln.Addr().String()}
	srv := grpc.NewServer(grpc.StatsHandler(compressionTag{}))
	coltracepb.RegisterTraceServiceServer(srv, grpcTraces{c: c})
	colmetricpb.RegisterMetricsServiceServer(srv, grpcMetrics{c: c})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return c
}

func (c *Collector) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want a POST of application/x-protobuf", http.StatusUnsupportedMediaType)
		return
	}
	var body io.Reader = r.Body
	gz := r.Header.Get("Content-Encoding") == "gzip"
	if gz {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var resp proto.Message
	switch r.URL.Path {
	case TracesPath:
		req := new(coltracepb.ExportTraceServiceRequest)
		if err = proto.Unmarshal(b, req); err == nil {
			c.keep(Request{Path: r.URL.Path, Header: r.Header.Clone(), Gzip: gz}, req.ResourceSpans, nil)
		}
		resp = new(coltracepb.ExportTraceServiceResponse)
	case MetricsPath:
		req := new(colmetricpb.ExportMetricsServiceRequest)
		if err = proto.Unmarshal(b, req); err == nil {
			c.keep(Request{Path: r.URL.Path, Header: r.Header.Clone(), Gzip: gz}, nil, req.ResourceMetrics)
		}
		resp = new(colmetricpb.ExportMetricsServiceResponse)
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	out, err := proto.Marshal(resp)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (c *Collector) keep(r Request, spans []*tracepb.ResourceSpans, metrics []*metricpb.ResourceMetrics) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests = append(c.requests, r)
	c.spans = append(c.spans, spans...)
	c.metrics = append(c.metrics, metrics...)
}

// grpcRequest records a gRPC call's metadata as a Request.
func grpcRequest(ctx context.Context, path string) Request {
	md, _ := metadata.FromIncomingContext(ctx)
	h := http.Header{}
	for k, vs := range md {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	enc, _ := ctx.Value(compressionKey{}).(*string)
	return Request{Path: path, Header: h, Gzip: enc != nil && *enc == "gzip"}
}

// compressionTag is a gRPC stats handler that keeps each call's
// compression in its context (gRPC leaves grpc-encoding out of the
// metadata a handler sees).
type compressionTag struct{}

type compressionKey struct{}

func (compressionTag) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, compressionKey{}, new(string))
}

func (compressionTag) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if h, ok := s.(*stats.InHeader); ok {
		if enc, ok := ctx.Value(compressionKey{}).(*string); ok {
			*enc = h.Compression
		}
	}
}

func (compressionTag) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (compressionTag) HandleConn(context.Context, stats.ConnStats)                       {}

type grpcTraces struct {
	coltracepb.UnimplementedTraceServiceServer
	c *Collector
}

func (g grpcTraces) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	g.c.keep(grpcRequest(ctx, TracesPath), req.ResourceSpans, nil)
	return new(coltracepb.ExportTraceServiceResponse), nil
}

type grpcMetrics struct {
	colmetricpb.UnimplementedMetricsServiceServer
	c *Collector
}

func (g grpcMetrics) Export(ctx context.Context, req *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	g.c.keep(grpcRequest(ctx, MetricsPath), nil, req.ResourceMetrics)
	return new(colmetricpb.ExportMetricsServiceResponse), nil
}

// Requests is every export request received, in order.
func (c *Collector) Requests() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Request(nil), c.requests...)
}

// Spans is every span received, in order.
func (c *Collector) Spans() []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*tracepb.Span
	for _, rs := range c.spans {
		for _, ss := range rs.ScopeSpans {
			out = append(out, ss.Spans...)
		}
	}
	return out
}

// Metrics is every metric received, in order (a metric exported twice
// appears twice).
func (c *Collector) Metrics() []*metricpb.Metric {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*metricpb.Metric
	for _, rm := range c.metrics {
		for _, sm := range rm.ScopeMetrics {
			out = append(out, sm.Metrics...)
		}
	}
	return out
}

// ResourceAttribute is the string value of a resource attribute, from the
// first export (spans or metrics) that has it; "" if none has.
func (c *Collector) ResourceAttribute(key string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var res []*resourcepb.Resource
	for _, rs := range c.spans {
		res = append(res, rs.GetResource())
	}
	for _, rm := range c.metrics {
		res = append(res, rm.GetResource())
	}
	for _, r := range res {
		for _, kv := range r.GetAttributes() {
			if kv.Key == key {
				return kv.GetValue().GetStringValue()
			}
		}
	}
	return ""
}

// ClosedPort returns 127.0.0.1:port of a port that nothing listens on: one
// that was free a moment ago (a collector that is gone).
func ClosedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// selfSigned makes a P-256 certificate for 127.0.0.1, ::1 and localhost,
// valid for an hour, and returns it with its PEM encoding.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "otlptest collector"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(fmt.Errorf("otlptest: certificate: %w", err))
	}
	var buf bytes.Buffer
	if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: der}); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, buf.Bytes()
}
