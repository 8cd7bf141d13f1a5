package metrics_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/adhoc/adhoctest"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/metrics"
	"github.com/adhocd/adhocd/metrics/metricstest"
	"github.com/adhocd/adhocd/metrics/otlp/otlptest"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

var domain = jid.MustParse("localhost")

func ctx(t *testing.T) context.Context { return servertest.Context(t, 10*time.Second) }

// instrumented starts a server with telemetry, the demo commands and the
// metrics listener on loopback.
func instrumented(t *testing.T, opts []metrics.Option, extra []server.Option, cfgOpts ...servertest.Option) (*servertest.Server, *metrics.Telemetry) {
	t.Helper()
	return instrumentedWith(t, config.Default(), opts, extra, cfgOpts...)
}

// instrumentedWith is instrumented with the telemetry configured by tcfg.
func instrumentedWith(t *testing.T, tcfg config.Config, opts []metrics.Option, extra []server.Option, cfgOpts ...servertest.Option) (*servertest.Server, *metrics.Telemetry) {
	t.Helper()
	tel := newTelemetry(t, tcfg, opts...)
	srv := servertest.StartWith(t, append(instrumentation(tel), extra...), cfgOpts...)
	serveMetrics(t, tel, srv)
	return srv, tel
}

// newTelemetry returns the telemetry configured by tcfg, logging to the
// test and shut down at its cleanup.
func newTelemetry(t *testing.T, tcfg config.Config, opts ...metrics.Option) *metrics.Telemetry {
	t.Helper()
	tel, err := metrics.New(context.Background(), tcfg, slog.New(slog.NewTextHandler(t.Output(), nil)), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel
}

// instrumentation is the server options that give a server tel and the
// demo commands.
func instrumentation(tel *metrics.Telemetry) []server.Option {
	return []server.Option{server.WithObserver(tel.Server()), server.WithCommandObserver(tel.Commands()),
		server.WithMeterProvider(tel.MeterProvider()), server.WithCommands(adhoctest.Wizard(), adhoctest.Greeting())}
}

// serveMetrics has tel observe srv's command session store and starts
// the metrics listener on loopback.
func serveMetrics(t *testing.T, tel *metrics.Telemetry, srv *servertest.Server) {
	t.Helper()
	if err := tel.ObserveStore(srv.Commands().Store().(adhoc.StatsReporter)); err != nil {
		t.Fatal(err)
	}
	if err := tel.Start("127.0.0.1:0", srv.Ready); err != nil {
		t.Fatal(err)
	}
}

// scrape reads /metrics over HTTP and parses it.
func scrape(t *testing.T, tel *metrics.Telemetry) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + tel.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// TestCommandCounters runs a known number of commands of each outcome over
// TCP and checks that every counter moved by exactly that number.
func TestCommandCounters(t *testing.T) {
	srv, tel := instrumented(t, nil, nil)
	srv.AddUser("alice", "wonderland")
	before := scrape(t, tel)
	alice := srv.Dial("alice", "wonderland", "")
	req := adhoc.NewRequester(alice.Session)

	const greetings, cancels, badActions = 3, 2, 4
	for i := 0; i < greetings; i++ {
		if _, err := req.Start(ctx(t), domain, adhoctest.TimeNode); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < cancels; i++ {
		r, err := req.Start(ctx(t), domain, adhoctest.WizardNode)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := req.Cancel(ctx(t), r); err != nil {
			t.Fatal(err)
		}
	}
	open, err := req.Start(ctx(t), domain, adhoctest.WizardNode)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < badActions; i++ {
		if _, err := req.Continue(ctx(t), open, adhoc.Prev, nil); adhoc.Condition(err) != "bad-action" {
			t.Fatalf("prev at stage 1: %v", err)
		}
	}
	if _, err := req.Start(ctx(t), domain, "urn:made:up"); adhoc.Condition(err) != "item-not-found" {
		t.Fatal(err)
	}
	after := scrape(t, tel)

	delta := func(name string, labels map[string]string) float64 {
		return metricstest.Value(after, name, labels) - metricstest.Value(before, name, labels)
	}
	const cmds = "adhocd_command_executions_total"
	for _, c := range []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"node": adhoctest.TimeNode, "action": "execute", "outcome": "completed"}, greetings},
		{map[string]string{"node": adhoctest.WizardNode, "action": "execute", "outcome": "executing"}, cancels + 1},
		{map[string]string{"node": adhoctest.WizardNode, "action": "cancel", "outcome": "canceled"}, cancels},
		{map[string]string{"node": adhoctest.WizardNode, "action": "prev", "outcome": "bad-action"}, badActions},
		// A node that is not registered never becomes a label value.
		{map[string]string{"node": "unknown", "action": "execute", "outcome": "item-not-found"}, 1},
		{map[string]string{"node": "urn:made:up"}, 0},
	} {
		if got := delta(cmds, c.labels); got != c.want {
			t.Errorf("%s%v moved by %v, want %v", cmds, c.labels, got, c.want)
		}
	}
	if got := delta("adhocd_command_duration_seconds", map[string]string{"node": adhoctest.WizardNode}); got != cancels*2+1+badActions {
		t.Errorf("wizard duration count moved by %v", got)
	}
	if got := delta("adhocd_command_duration_seconds", map[string]string{"node": adhoctest.TimeNode}); got != greetings {
		t.Errorf("greeting duration count moved by %v", got)
	}
	// Server metrics from the same run.
	if got := delta("adhocd_logins_total", map[string]string{"mechanism": "SCRAM-SHA-256", "outcome": "success"}); got != 1 {
		t.Errorf("logins moved by %v", got)
	}
	if got := metricstest.Value(after, "adhocd_sessions_bound", nil); got != 1 {
		t.Errorf("bound sessions %v", got)
	}
	if got := metricstest.Value(after, "adhocd_adhoc_sessions_held", nil); got != 1 {
		t.Errorf("sessions held %v (the wizard left open)", got)
	}
	wantIQs := float64(greetings + 2*cancels + 1 + badActions + 1)
	if got := delta("adhocd_stanzas_total", map[string]string{"direction": "in", "kind": "iq"}); got != wantIQs {
		t.Errorf("IQs in moved by %v, want %v", got, wantIQs)
	}

	// promlint finds nothing wrong with any metric.
	mfs, err := tel.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func TestEvictionsCounted(t *testing.T) {
	servertest.Embedded(t) // the in-memory session store evicts; the shared one does not
	srv, tel := instrumented(t, nil, nil, func(c *config.Config) { c.Adhoc.MaxSessions = 5 })
	srv.AddUser("alice", "wonderland")
	req := adhoc.NewRequester(srv.Dial("alice", "wonderland", "").Session)
	for i := 0; i < 8; i++ {
		if _, err := req.Start(ctx(t), domain, adhoctest.WizardNode); err != nil {
			t.Fatal(err)
		}
	}
	mfs := scrape(t, tel)
	if got := metricstest.Value(mfs, "adhocd_adhoc_store_operations_total", map[string]string{"result": "eviction"}); got != 3 {
		t.Fatalf("evictions %v, want 3", got)
	}
	if got := metricstest.Value(mfs, "adhocd_adhoc_sessions_held", nil); got != 5 {
		t.Fatalf("held %v, want 5", got)
	}
}

// TestSpans: one span per command stage, with node, action, stage and
// outcome, and nothing of what the requester submitted.
func TestSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	srv, _ := instrumented(t, []metrics.Option{metrics.WithSpanExporter(exp)}, nil)
	srv.AddUser("alice", "wonderland")
	req := adhoc.NewRequester(srv.Dial("alice", "wonderland", "").Session)
	const secret = "Sup3r-Secret-Name"
	r, err := req.Start(ctx(t), domain, adhoctest.WizardNode)
	if err != nil {
		t.Fatal(err)
	}
	if r, err = req.Continue(ctx(t), r, adhoc.Next, adhoc.Values{"name": {secret}, "color": {"red"}}); err != nil {
		t.Fatal(err)
	}
	if r, err = req.Continue(ctx(t), r, adhoc.Next, adhoc.Values{"contact": {"a@b"}}); err != nil {
		t.Fatal(err)
	}
	if _, err = req.Complete(ctx(t), r, nil); err != nil {
		t.Fatal(err)
	}
	// A stanza's span ends just after its reply is written: wait for them.
	deadline := time.Now().Add(5 * time.Second)
	for len(exp.GetSpans()) < 8 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	var spans tracetest.SpanStubs
	stanzaSpans := map[trace.SpanID]bool{}
	for _, s := range exp.GetSpans() {
		if s.Name == "xmpp iq" {
			stanzaSpans[s.SpanContext.SpanID()] = true
			continue
		}
		spans = append(spans, s)
	}
	want := []struct {
		name, action, outcome string
		stage                 int64
	}{
		{"adhoc execute", "execute", "executing", 0},
		{"adhoc next", "next", "executing", 0},
		{"adhoc next", "next", "executing", 1},
		{"adhoc complete", "complete", "completed", 2},
	}
	if len(spans) != len(want) {
		t.Fatalf("%d spans, want %d", len(spans), len(want))
	}
	for i, s := range spans {
		attrs := map[string]string{}
		var stage int64 = -1
		for _, a := range s.Attributes {
			if a.Key == "adhoc.stage" {
				stage = a.Value.AsInt64()
			}
			attrs[string(a.Key)] = a.Value.String()
			if strings.Contains(a.Value.String(), secret) || strings.Contains(a.Value.String(), "alice") {
				t.Errorf("span %d carries a value or JID: %s=%s", i, a.Key, a.Value.String())
			}
		}
		w := want[i]
		if s.Name != w.name || attrs["adhoc.node"] != adhoctest.WizardNode || attrs["adhoc.action"] != w.action || attrs["adhoc.outcome"] != w.outcome || stage != w.stage {
			t.Errorf("span %d: %s %v, want %+v", i, s.Name, attrs, w)
		}
		if !s.EndTime.After(s.StartTime) {
			t.Errorf("span %d has no duration", i)
		}
		// Each stage's span is a child of the span of the IQ that carried it.
		if !stanzaSpans[s.Parent.SpanID()] || s.Parent.TraceID() != s.SpanContext.TraceID() {
			t.Errorf("span %d (%s) is not the child of an xmpp iq span", i, s.Name)
		}
	}
}

// TestOTLPExport runs commands on a server whose config says
// otel.exporter: otlp, and checks what a collector on loopback receives: a
// span per command stage and the command counter, with the service name
// and the configured header, over each protocol.
func TestOTLPExport(t *testing.T) {
	for _, tc := range []struct {
		protocol string
		start    func(*testing.T) *otlptest.Collector
	}{
		{"http/protobuf", otlptest.Start},
		{"grpc", otlptest.StartGRPC},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			col := tc.start(t)
			tcfg := config.Default()
			tcfg.OTel = config.OTel{Exporter: "otlp", Protocol: tc.protocol, Endpoint: col.Endpoint, Insecure: true, Headers: "authorization=Bearer t0ken"}
			srv, tel := instrumentedWith(t, tcfg, nil, nil)
			srv.AddUser("alice", "wonderland")
			req := adhoc.NewRequester(srv.Dial("alice", "wonderland", "").Session)
			const runs = 3
			for range runs {
				if _, err := req.Start(ctx(t), domain, adhoctest.TimeNode); err != nil {
					t.Fatal(err)
				}
			}
			if err := tel.Shutdown(ctx(t)); err != nil { // flushes spans and the last metrics
				t.Fatal(err)
			}
			spans := 0
			for _, s := range col.Spans() {
				for _, kv := range s.Attributes {
					if kv.Key == "adhoc.node" && kv.Value.GetStringValue() == adhoctest.TimeNode {
						spans++
					}
				}
			}
			if spans != runs {
				t.Errorf("collector got %d spans of %s, want %d", spans, adhoctest.TimeNode, runs)
			}
			if executed := commandCount(col); executed != runs {
				t.Errorf("collector got adhocd.command.executions{node=%s} = %d, want %d", adhoctest.TimeNode, executed, runs)
			}
			if name := col.ResourceAttribute("service.name"); name != "adhocd" {
				t.Errorf("service.name %q, want adhocd", name)
			}
			for _, r := range col.Requests() {
				if got := r.Header.Get("Authorization"); got != "Bearer t0ken" {
					t.Errorf("%s: Authorization %q, want the configured header", r.Path, got)
				}
			}
		})
	}
}

// commandCount is the last exported adhocd.command.executions of the
// greeting command (cumulative: the last export holds all).
func commandCount(col *otlptest.Collector) int64 {
	var executed int64
	for _, m := range col.Metrics() {
		if m.Name != "adhocd.command.executions" {
			continue
		}
		for _, p := range m.GetSum().GetDataPoints() {
			for _, kv := range p.Attributes {
				if kv.Key == "node" && kv.Value.GetStringValue() == adhoctest.TimeNode {
					executed = max(executed, p.GetAsInt())
				}
			}
		}
	}
	return executed
}

// TestResourceFromEnvironment: OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES describe the server to the collector, and
// otel.service_name, when set, wins over both.
func TestResourceFromEnvironment(t *testing.T) {
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging,service.name=from-attributes")
	for _, tc := range []struct{ env, configured, want string }{
		{"", "", "from-attributes"},
		{"chat-eu", "", "chat-eu"},
		{"chat-eu", "chat-configured", "chat-configured"},
	} {
		t.Setenv("OTEL_SERVICE_NAME", tc.env)
		col := otlptest.Start(t)
		tcfg := config.Default()
		tcfg.OTel = config.OTel{Exporter: "otlp", Endpoint: col.Endpoint, Insecure: true, ServiceName: tc.configured}
		_, tel := instrumentedWith(t, tcfg, nil, nil)
		if err := tel.Shutdown(ctx(t)); err != nil { // the last collection is exported
			t.Fatal(err)
		}
		if got := col.ResourceAttribute("service.name"); got != tc.want {
			t.Errorf("OTEL_SERVICE_NAME=%q, otel.service_name=%q: service.name %q, want %q", tc.env, tc.configured, got, tc.want)
		}
		if got := col.ResourceAttribute("deployment.environment"); got != "staging" {
			t.Errorf("deployment.environment %q, want staging from OTEL_RESOURCE_ATTRIBUTES", got)
		}
	}
}

// TestSDKDisabled: OTEL_SDK_DISABLED=true exports nothing although the
// config says otlp; /metrics still answers.
func TestSDKDisabled(t *testing.T) {
	t.Setenv("OTEL_SDK_DISABLED", "true")
	col := otlptest.Start(t)
	tcfg := config.Default()
	tcfg.OTel = config.OTel{Exporter: "otlp", Endpoint: col.Endpoint, Insecure: true}
	srv, tel := instrumentedWith(t, tcfg, nil, nil)
	srv.AddUser("alice", "wonderland")
	req := adhoc.NewRequester(srv.Dial("alice", "wonderland", "").Session)
	if _, err := req.Start(ctx(t), domain, adhoctest.TimeNode); err != nil {
		t.Fatal(err)
	}
	if got := metricstest.Value(scrape(t, tel), "adhocd_command_executions_total", map[string]string{"node": adhoctest.TimeNode}); got != 1 {
		t.Errorf("/metrics counts %v commands, want 1", got)
	}
	if err := tel.Shutdown(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if n := len(col.Requests()); n != 0 {
		t.Errorf("%d OTLP requests with OTEL_SDK_DISABLED=true", n)
	}
}

// TestShutdownWhenCollectorGone: with the collector's port closed, the
// telemetry of a server that has spans and metrics to flush shuts down
// well within the 5 s that adhocd gives it, over either protocol. (gRPC
// retries an unreachable collector until FlushBudget ends; HTTP gives up
// on a refused connection at once.)
func TestShutdownWhenCollectorGone(t *testing.T) {
	for _, protocol := range []string{"http/protobuf", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			tcfg := config.Default()
			tcfg.OTel = config.OTel{Exporter: "otlp", Protocol: protocol, Endpoint: otlptest.ClosedPort(t), Insecure: true}
			srv, tel := instrumentedWith(t, tcfg, nil, nil)
			srv.AddUser("alice", "wonderland")
			req := adhoc.NewRequester(srv.Dial("alice", "wonderland", "").Session)
			if _, err := req.Start(ctx(t), domain, adhoctest.TimeNode); err != nil {
				t.Fatal(err)
			}
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // as cmd/adhocd does
			defer cancel()
			start := time.Now()
			err := tel.Shutdown(sctx)
			took := time.Since(start)
			if err == nil {
				t.Error("Shutdown reported no error although nothing could be exported")
			}
			bound := 1500 * time.Millisecond // HTTP: the refused connection is final
			if protocol == "grpc" {
				bound = metrics.FlushBudget + time.Second
			}
			if took > bound {
				t.Errorf("Shutdown took %v with the collector gone, want under %v", took, bound)
			}
			t.Logf("shutdown took %v: %v", took, err)
		})
	}
}

// blockingStop is a module whose Stop waits, so that a shutdown can be
// observed while it is under way.
type blockingStop struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingStop) Name() string                              { return "blocking" }
func (b *blockingStop) Start(context.Context, modules.Host) error { return nil }
func (b *blockingStop) Stop(context.Context) error {
	close(b.entered)
	<-b.release
	return nil
}

func TestReadyzDuringShutdown(t *testing.T) {
	block := &blockingStop{entered: make(chan struct{}), release: make(chan struct{})}
	srv, tel := instrumented(t, nil, []server.Option{server.WithModules(block)})
	get := func(path string) int {
		resp, err := http.Get("http://" + tel.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if get("/readyz") != 200 || get("/healthz") != 200 {
		t.Fatal("not ready while serving")
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Stop() }()
	<-block.entered // shutdown is under way, not finished
	if code := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz during shutdown: %d", code)
	}
	if get("/healthz") != 200 {
		t.Fatal("/healthz must stay up: the process is alive")
	}
	close(block.release)
	wg.Wait()
}

// TestDashboardMetricsExist: every metric the Grafana dashboard queries,
// its Federation row's included, is one adhocd exports, with the labels
// the panel groups by (checked against a real scrape). The server is
// b.test of a federated pair, with the traffic that gives each family a
// series: a command and a client stream error, messages to and from
// a.test (stanzas, streams and authentications both ways), a message to a
// domain whose server cannot be reached (bounced) and a server-to-server
// stream for a domain b.test does not serve (refused, host-unknown).
func TestDashboardMetricsExist(t *testing.T) {
	const unreachable = "nowhere.test"
	tel := newTelemetry(t, config.Default())
	var s2sAddr string
	a, b := servertest.Federated(t, func(_, b *config.Config) {
		s2sAddr = b.S2S.Listen
		b.S2S.Hosts[unreachable] = servertest.FreeAddr(t) // nothing listens there
	}, instrumentation(tel)...)
	serveMetrics(t, tel, b)
	alice, bob := online(t, a, "alice", "wonderland"), online(t, b, "bob", "builder")

	// Client traffic on b.test.
	if _, err := adhoc.NewRequester(bob.Session).Start(ctx(t), jid.MustParse("b.test"), adhoctest.TimeNode); err != nil {
		t.Fatal(err)
	}
	raw := b.RawDial()
	raw.Write(strings.Replace(servertest.Header, "to='localhost'", "to='b.test'", 1) + `<message><body></message>`) // a stream error
	raw.ClosedByServer(5 * time.Second)

	// Federation: a message each way, one bounced, one stream refused.
	send := func(c *servertest.Client, s string) {
		t.Helper()
		if err := c.SendRaw(ctx(t), s); err != nil {
			t.Fatal(err)
		}
	}
	send(bob, `<message to='alice@a.test' type='chat' id='m1'><body>from b</body></message>`)
	alice.Next(crossing, isMessage("bob@b.test/", "from b"))
	send(alice, `<message to='bob@b.test' type='chat' id='m2'><body>from a</body></message>`)
	bob.Next(crossing, isMessage("alice@a.test/", "from a"))
	send(bob, `<message to='x@`+unreachable+`' type='chat' id='m3'><body>anyone?</body></message>`)
	bob.Next(crossing, func(s servertest.Stanza) bool {
		return s.Name == "message" && s.Attrs["id"] == "m3" && s.Attrs["type"] == "error" && strings.Contains(s.XML, "remote-server-not-found")
	})
	peer := servertest.DialRaw(t, s2sAddr)
	peer.Write(`<?xml version='1.0'?><stream:stream from='c.test' to='elsewhere.test' version='1.0' xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>`)
	if out, _ := peer.ClosedByServer(5 * time.Second); !strings.Contains(out, "host-unknown") {
		t.Fatalf("b.test answered a stream for a domain it does not serve with %q, want host-unknown", out)
	}
	mfs := scrape(t, tel)

	for _, w := range []struct {
		name   string
		labels map[string]string
	}{
		{"adhocd_s2s_streams", map[string]string{"domain": "a.test", "direction": "out"}},
		{"adhocd_s2s_streams", map[string]string{"domain": "a.test", "direction": "in"}},
		{"adhocd_s2s_stanzas_total", map[string]string{"domain": "a.test", "direction": "out"}},
		{"adhocd_s2s_stanzas_total", map[string]string{"domain": "a.test", "direction": "in"}},
		{"adhocd_s2s_bounced_total", map[string]string{"domain": "other", "condition": "remote-server-not-found"}},
		{"adhocd_s2s_auth_total", map[string]string{"direction": "out", "method": "dialback", "outcome": "success"}},
		{"adhocd_s2s_auth_total", map[string]string{"direction": "in", "method": "dialback", "outcome": "success"}},
		{"adhocd_s2s_refused_total", map[string]string{"reason": "host-unknown"}},
	} {
		if got := metricstest.Value(mfs, w.name, w.labels); got < 1 {
			t.Errorf("%s%v = %v after the traffic, want at least 1", w.name, w.labels, got)
		}
	}

	refs := dashboardQueries(t)
	s2sRefs := 0
	for _, r := range refs {
		if strings.HasPrefix(r.metric, "adhocd_s2s_") {
			s2sRefs++
		}
		family := strings.TrimSuffix(r.metric, "_bucket")
		mf := mfs[family]
		if mf == nil {
			t.Errorf("panel %q queries %s, which adhocd does not export", r.panel, r.metric)
			continue
		}
		for _, label := range r.by {
			if label == "le" && family != r.metric {
				continue // a histogram's bucket bound
			}
			if !hasLabel(mf, label) {
				t.Errorf("panel %q groups %s by %q, a label it does not have", r.panel, r.metric, label)
			}
		}
	}
	if len(refs) < 15 {
		t.Fatalf("only %d metric references found in the dashboard", len(refs))
	}
	if s2sRefs < 6 {
		t.Fatalf("only %d adhocd_s2s_ references found in the dashboard's Federation row", s2sRefs)
	}
}

// query is one metric a dashboard panel queries.
type query struct {
	panel, metric string
	by            []string // the labels of the query's "by (...)" clauses
}

// dashboardQueries reads the metrics the Grafana dashboard's panels query.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "helm", "adhocd", "dashboards", "adhocd.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`adhocd_[a-z0-9_]+`)
	byClause := regexp.MustCompile(`by \(([^)]*)\)`)
	var qs []query
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			var by []string
			for _, m := range byClause.FindAllStringSubmatch(tg.Expr, -1) {
				for _, l := range strings.Split(m[1], ",") {
					by = append(by, strings.TrimSpace(l))
				}
			}
			for _, name := range names.FindAllString(tg.Expr, -1) {
				qs = append(qs, query{panel: p.Title, metric: name, by: by})
			}
		}
	}
	return qs
}

// hasLabel reports whether a series of mf has the label name.
func hasLabel(mf *dto.MetricFamily, name string) bool {
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return true
			}
		}
	}
	return false
}

// crossing is how long a stanza may take to reach the other server of a
// federated pair, the first one setting up the streams.
const crossing = 15 * time.Second

// online logs user in on srv, a new account, and sends its initial
// presence.
func online(t *testing.T, srv *servertest.Server, user, password string) *servertest.Client {
	t.Helper()
	srv.AddUser(user, password)
	c := srv.Dial(user, password, "")
	if err := c.SendRaw(ctx(t), "<presence/>"); err != nil {
		t.Fatal(err)
	}
	return c
}

// isMessage matches a message from a JID that begins with from, whose
// body is body.
func isMessage(from, body string) func(servertest.Stanza) bool {
	return func(s servertest.Stanza) bool {
		return s.Name == "message" && strings.HasPrefix(s.Attrs["from"], from) && strings.Contains(s.XML, ">"+body+"</body>")
	}
}

// TestModuleMetrics: the modules' counters are exported with the server's
// own: a chat message between two accounts is archived on both sides
// (adhocd.mam.archived in and out), a message to an account that is
// offline is kept and then delivered from offline storage, a vCard set
// counts, and a blocked contact's message counts as refused.
func TestModuleMetrics(t *testing.T) {
	srv, tel := instrumented(t, nil, nil)
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	srv.AddUser("carol", "pw")
	alice := srv.RawLogin("alice", "wonderland", "a")
	alice.Write(`<presence/>`)
	alice.Expect(`<presence`)
	bob := srv.RawLogin("bob", "builder", "b")
	bob.Write(`<presence/>`)
	bob.Expect(`<presence`)
	alice.Write(`<message to='bob@localhost' type='chat' id='m1'><body>hi</body></message>`)
	bob.Expect(`id="m1"`)
	alice.Write(`<message to='carol@localhost' type='chat' id='m2'><body>for later</body></message>`)
	alice.Write(`<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>Alice</FN></vCard></iq>`)
	alice.Expect(`id="v1"`)
	bob.Write(`<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='alice@localhost'/></block></iq>`)
	bob.Expect(`id="b1"`)
	alice.Write(`<message to='bob@localhost' type='chat' id='m3'><body>blocked</body></message>`)
	alice.Expect(`id="m3"[^>]*type="error"|type="error"[^>]*id="m3"`)
	carol := srv.RawLogin("carol", "pw", "c")
	carol.Write(`<presence/>`)
	carol.Expect(`id="m2"`)

	mfs := scrape(t, tel)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"adhocd_mam_archived_total", map[string]string{"direction": "out"}, 2},
		{"adhocd_mam_archived_total", map[string]string{"direction": "in"}, 2},
		{"adhocd_offline_kept_total", nil, 1},
		{"adhocd_offline_delivered_total", nil, 1},
		{"adhocd_vcard_stored_total", nil, 1},
		{"adhocd_blocking_refused_total", map[string]string{"direction": "from"}, 1},
	} {
		if got := metricstest.Value(mfs, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}
