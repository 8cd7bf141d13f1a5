// Package otlptest is an OTLP/HTTP collector for tests: it listens on
// loopback, decodes what exporters POST to /v1/traces and /v1/metrics, and
// keeps it for assertions.
package otlptest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Collector receives OTLP/HTTP requests.
type Collector struct {
	// Endpoint is host:port, for otel.endpoint.
	Endpoint string

	mu      sync.Mutex
	spans   []*tracepb.ResourceSpans
	metrics []*metricpb.ResourceMetrics
	posts   map[string]int
	answer  func(path string, n int) (status int, header http.Header, body string)
}

// Start runs a collector until the test ends. answer, if not nil, chooses
// the reply to the nth request (from 1) on a path; a non-2xx reply keeps
// nothing of that request.
func Start(t *testing.T, answer func(path string, n int) (status int, header http.Header, body string)) *Collector {
	t.Helper()
	c := &Collector{posts: map[string]int{}, answer: answer}
	srv := httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(srv.Close)
	c.Endpoint = strings.TrimPrefix(srv.URL, "http://")
	return c
}

func (c *Collector) serve(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.posts[r.URL.Path]++
	n := c.posts[r.URL.Path]
	c.mu.Unlock()
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want a POST of application/x-protobuf", http.StatusUnsupportedMediaType)
		return
	}
	if c.answer != nil {
		status, header, body := c.answer(r.URL.Path, n)
		if status < 200 || status > 299 {
			for k, v := range header {
				w.Header()[k] = v
			}
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
			return
		}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch r.URL.Path {
	case "/v1/traces":
		err = decode(body, func() *tracepb.ResourceSpans { return new(tracepb.ResourceSpans) }, &c.mu, &c.spans)
	case "/v1/metrics":
		err = decode(body, func() *metricpb.ResourceMetrics { return new(metricpb.ResourceMetrics) }, &c.mu, &c.metrics)
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
}

// decode reads an Export*ServiceRequest: repeated field 1 of M.
func decode[M proto.Message](b []byte, fresh func() M, mu *sync.Mutex, into *[]M) error {
	var got []M
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if num != 1 || typ != protowire.BytesType {
			return fmt.Errorf("unexpected field %d type %d", num, typ)
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		m := fresh()
		if err := proto.Unmarshal(v, m); err != nil {
			return err
		}
		got = append(got, m)
	}
	mu.Lock()
	*into = append(*into, got...)
	mu.Unlock()
	return nil
}

// Posts is how many requests came to path.
func (c *Collector) Posts(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.posts[path]
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
