// Package metrics measures adhocd with OpenTelemetry and serves the result
// to Prometheus: /metrics, /healthz and /readyz on metrics.listen, and OTLP
// (traces, and the same metrics) when otel.exporter says so.
//
// The OpenTelemetry side follows the SDK's environment as well as
// config.yaml: OTEL_SDK_DISABLED=true turns every export off (/metrics
// stays: it is metrics.listen's), OTEL_RESOURCE_ATTRIBUTES and
// OTEL_SERVICE_NAME name the resource unless otel.service_name is set, and
// package otlp leaves the OTEL_EXPORTER_OTLP_* variables to the upstream
// exporters.
//
// Every event is instrumented once, with OpenTelemetry instruments; the
// Prometheus exporter of go.opentelemetry.io/otel/exporters/prometheus serves
// them from adhocd's own prometheus.Registry (beside the Go and process
// collectors), and an OTLP reader exports the very same instruments, so the
// two never disagree. A command stage gives a counter increment, a histogram
// observation and a span, all from one adhoc.Event.
//
// No label carries a JID, a session id or a value: commands are labelled by
// node (only nodes registered at the server; anything else is "unknown"),
// action and outcome, logins by mechanism and outcome, stanzas by kind.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	promexp "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/storage"
)

// Telemetry owns the registry, the meter and tracer providers, the
// instruments and the HTTP listener.
type Telemetry struct {
	// Registry is adhocd's own Prometheus registry.
	Registry *prometheus.Registry

	log      *slog.Logger
	meters   *sdkmetric.MeterProvider
	tracers  trace.TracerProvider
	shutdown []func(context.Context) error
	tracer   trace.Tracer
	tracing  bool // spans are exported somewhere
	ready    atomic.Pointer[func() bool]
	http     *http.Server
	ln       net.Listener

	commands    metric.Int64Counter
	duration    metric.Float64Histogram
	connections metric.Int64UpDownCounter
	accepted    metric.Int64Counter
	refused     metric.Int64Counter
	logins      metric.Int64Counter
	stanzas     metric.Int64Counter
	streamErrs  metric.Int64Counter
	bound       metric.Int64UpDownCounter

	// Stream management (XEP-0198).
	smEnabled, smResumed, smResumeFailed metric.Int64Counter
}

// Option configures Telemetry.
type Option func(*settings)

type settings struct {
	spanExporter sdktrace.SpanExporter
	readers      []sdkmetric.Reader
}

// WithSpanExporter sends spans to e (synchronously; tests use an in-memory
// exporter) in addition to what otel.exporter configures.
func WithSpanExporter(e sdktrace.SpanExporter) Option {
	return func(s *settings) { s.spanExporter = e }
}

// New builds the telemetry for cfg. Nothing listens until Start.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opts ...Option) (*Telemetry, error) {
	var set settings
	for _, o := range opts {
		o(&set)
	}
	t := &Telemetry{Registry: prometheus.NewRegistry(), log: log}
	t.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	res, err := newResource(ctx, cfg.OTel)
	if err != nil {
		return nil, err
	}
	prom, err := promexp.New(promexp.WithRegisterer(t.Registry), promexp.WithoutScopeInfo(), promexp.WithoutTargetInfo())
	if err != nil {
		return nil, fmt.Errorf("metrics: prometheus exporter: %w", err)
	}
	readers := append([]sdkmetric.Reader{prom}, set.readers...)
	spanExporters := []sdktrace.SpanExporter{}
	if set.spanExporter != nil {
		spanExporters = append(spanExporters, set.spanExporter)
	}
	otlpReaders, otlpSpans, err := exporters(ctx, cfg.OTel, log)
	if err != nil {
		return nil, err
	}
	readers = append(readers, otlpReaders...)
	spanExporters = append(spanExporters, otlpSpans...)

	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithView(durationBuckets)}
	for _, r := range readers {
		mopts = append(mopts, sdkmetric.WithReader(r))
	}
	t.meters = sdkmetric.NewMeterProvider(mopts...)
	t.shutdown = append(t.shutdown, t.meters.Shutdown)
	if len(spanExporters) == 0 {
		t.tracers = tracenoop.NewTracerProvider()
	} else {
		topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
		for _, e := range spanExporters {
			if e == set.spanExporter {
				topts = append(topts, sdktrace.WithSyncer(e))
			} else {
				topts = append(topts, sdktrace.WithBatcher(e))
			}
		}
		tp := sdktrace.NewTracerProvider(topts...)
		t.tracers = tp
		t.tracing = true
		t.shutdown = append(t.shutdown, tp.Shutdown)
	}
	t.tracer = t.tracers.Tracer("github.com/adhocd/adhocd/adhoc")
	if err := t.instruments(t.meters.Meter("github.com/adhocd/adhocd")); err != nil {
		return nil, err
	}
	return t, nil
}

// newResource describes this server to the exporters: service.name
// adhocd, the SDK's attributes, then OTEL_RESOURCE_ATTRIBUTES and
// OTEL_SERVICE_NAME, then otel.service_name; a later source wins.
func newResource(ctx context.Context, c config.OTel) (*resource.Resource, error) {
	opts := []resource.Option{
		resource.WithAttributes(semconv.ServiceName("adhocd")),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	}
	if c.ServiceName != "" {
		opts = append(opts, resource.WithAttributes(semconv.ServiceName(c.ServiceName)))
	}
	res, err := resource.New(ctx, opts...)
	if err != nil {
		// A malformed OTEL_RESOURCE_ATTRIBUTES is refused at start rather
		// than half applied.
		return nil, fmt.Errorf("metrics: resource: %w", err)
	}
	return res, nil
}

// durationBuckets sets the command-duration histogram's buckets (seconds):
// commands take microseconds to tens of milliseconds.
var durationBuckets = sdkmetric.NewView(
	sdkmetric.Instrument{Name: "adhocd.command.duration"},
	sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{
		Boundaries: []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
	}},
)

func (t *Telemetry) instruments(m metric.Meter) error {
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	var err error
	t.commands, err = m.Int64Counter("adhocd.command.executions", metric.WithDescription("Ad-hoc command requests by node, action and outcome (executing, completed, canceled, or the error condition)."))
	add(err)
	t.duration, err = m.Float64Histogram("adhocd.command.duration", metric.WithUnit("s"), metric.WithDescription("Time to handle one ad-hoc command request, by node."))
	add(err)
	t.connections, err = m.Int64UpDownCounter("adhocd.connections.open", metric.WithDescription("Client connections open now."))
	add(err)
	t.accepted, err = m.Int64Counter("adhocd.connections.accepted", metric.WithDescription("Client connections accepted."))
	add(err)
	t.refused, err = m.Int64Counter("adhocd.connections.refused", metric.WithDescription("Client connections refused at limits.max_connections."))
	add(err)
	t.logins, err = m.Int64Counter("adhocd.logins", metric.WithDescription("SASL authentications by mechanism and outcome (success or the failure condition)."))
	add(err)
	t.stanzas, err = m.Int64Counter("adhocd.stanzas", metric.WithDescription("Stanzas by direction (in, out) and kind (message, presence, iq)."))
	add(err)
	t.streamErrs, err = m.Int64Counter("adhocd.stream.errors", metric.WithDescription("Stream errors sent, by condition."))
	add(err)
	t.bound, err = m.Int64UpDownCounter("adhocd.sessions.bound", metric.WithDescription("Client sessions bound now."))
	add(err)
	t.smEnabled, err = m.Int64Counter("adhocd.sm.enabled", metric.WithDescription("Streams that enabled stream management (XEP-0198)."))
	add(err)
	t.smResumed, err = m.Int64Counter("adhocd.sm.resumed", metric.WithDescription("Hibernating sessions resumed by a new stream (XEP-0198)."))
	add(err)
	t.smResumeFailed, err = m.Int64Counter("adhocd.sm.resume_failed", metric.WithDescription("Resumptions refused, by reason: unknown, expired, timeout, bad-request, too-high, unexpected."))
	add(err)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("metrics: instruments: %w", err)
	}
	return nil
}

// ObserveStore exports the counters of a command session store: sessions
// held, hits, misses, evictions, expirations and per-user cap refusals.
func (t *Telemetry) ObserveStore(r adhoc.StatsReporter) error {
	m := t.meters.Meter("github.com/adhocd/adhocd/adhoc")
	held, err1 := m.Int64ObservableGauge("adhocd.adhoc.sessions.held", metric.WithDescription("Ad-hoc command sessions held."))
	ops, err2 := m.Int64ObservableCounter("adhocd.adhoc.store.operations", metric.WithDescription("Session store lookups and removals by result: hit, miss, eviction, expiration, refusal (per-user cap)."))
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("metrics: store instruments: %w", err)
	}
	_, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := r.Stats()
		o.ObserveInt64(held, int64(s.Held))
		for result, n := range map[string]uint64{"hit": s.Hits, "miss": s.Misses, "eviction": s.Evictions, "expiration": s.Expirations, "refusal": s.Refusals} {
			o.ObserveInt64(ops, int64(n), metric.WithAttributes(attribute.String("result", result)))
		}
		return nil
	}, held, ops)
	if err != nil {
		return fmt.Errorf("metrics: store callback: %w", err)
	}
	return nil
}

// ObserveOffline exports what offline messages take in the store:
// adhocd.offline.bytes and adhocd.offline.messages, read from u (the
// store's own counters) at each collection, and adhocd.offline.limit,
// limits.max_offline_total_bytes as limit returns it (so that a reload
// shows).
func (t *Telemetry) ObserveOffline(u storage.OfflineUsageReporter, limit func() int64) error {
	m := t.meters.Meter("github.com/adhocd/adhocd/storage")
	used, err1 := m.Int64ObservableGauge("adhocd.offline.bytes", metric.WithUnit("By"), metric.WithDescription("Bytes of the offline messages kept for all accounts."))
	msgs, err2 := m.Int64ObservableGauge("adhocd.offline.messages", metric.WithDescription("Offline messages kept for all accounts."))
	lim, err3 := m.Int64ObservableGauge("adhocd.offline.limit", metric.WithUnit("By"), metric.WithDescription("limits.max_offline_total_bytes: the bytes of offline messages the store keeps at most."))
	if err := errors.Join(err1, err2, err3); err != nil {
		return fmt.Errorf("metrics: offline instruments: %w", err)
	}
	_, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		b, n := u.OfflineUsage()
		o.ObserveInt64(used, b)
		o.ObserveInt64(msgs, n)
		o.ObserveInt64(lim, limit())
		return nil
	}, used, msgs, lim)
	if err != nil {
		return fmt.Errorf("metrics: offline callback: %w", err)
	}
	return nil
}

// MeterProvider is where the server's modules get their meters
// (server.WithMeterProvider): their instruments are exported with the
// server's own.
func (t *Telemetry) MeterProvider() metric.MeterProvider { return t.meters }

// Commands returns the observer to give the adhoc provider: each request
// is counted, timed and traced as one span carrying node, action, stage and
// outcome.
func (t *Telemetry) Commands() func(context.Context, adhoc.Event) {
	// Attribute sets are built once per (node, action, outcome): nodes are
	// registered ones or "unknown", actions and outcomes fixed sets, so the
	// cache is bounded.
	type key struct{ node, action, outcome string }
	type opts struct {
		add    metric.AddOption
		record metric.RecordOption
	}
	var cache sync.Map
	return func(ctx context.Context, e adhoc.Event) {
		node := e.Node
		if node == "" {
			node = "unknown"
		}
		k := key{node, string(e.Action), e.Outcome}
		o, ok := cache.Load(k)
		if !ok {
			o, _ = cache.LoadOrStore(k, opts{
				add: metric.WithAttributeSet(attribute.NewSet(
					attribute.String("node", node), attribute.String("action", k.action), attribute.String("outcome", k.outcome))),
				record: metric.WithAttributeSet(attribute.NewSet(attribute.String("node", node))),
			})
		}
		t.commands.Add(ctx, 1, o.(opts).add)
		t.duration.Record(ctx, e.Duration.Seconds(), o.(opts).record)
		_, span := t.tracer.Start(ctx, "adhoc "+string(e.Action), trace.WithTimestamp(e.Start), trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("adhoc.node", node), attribute.String("adhoc.action", string(e.Action)),
				attribute.Int("adhoc.stage", e.Stage), attribute.String("adhoc.outcome", e.Outcome)))
		span.End(trace.WithTimestamp(e.Start.Add(e.Duration)))
	}
}

// Start serves /metrics, /healthz (the process answers) and /readyz (ready
// reports true: listeners up, store open, no shutdown begun) on listen.
func (t *Telemetry) Start(listen string, ready func() bool) error {
	t.ready.Store(&ready)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(t.Registry, promhttp.HandlerOpts{Registry: t.Registry}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if f := t.ready.Load(); f != nil && (*f)() {
			_, _ = w.Write([]byte("ready\n"))
			return
		}
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	})
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("metrics: listen: %w", err)
	}
	t.ln = ln
	t.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := t.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.log.Error("metrics listener", "err", err)
		}
	}()
	t.log.Info("metrics listening", "addr", ln.Addr().String())
	return nil
}

// Addr returns the HTTP listener's address once started.
func (t *Telemetry) Addr() net.Addr {
	if t.ln == nil {
		return nil
	}
	return t.ln.Addr()
}

// FlushBudget bounds the last export at Shutdown: a collector that is gone
// or unreachable costs the server's exit at most this long (what was not
// sent by then is lost), and one that answers needs milliseconds.
const FlushBudget = time.Second

// Shutdown stops the listener and flushes the exporters, the span and the
// metric exporters side by side, each within FlushBudget (or ctx, if it
// ends first).
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	if t.http != nil {
		errs = append(errs, t.http.Shutdown(ctx))
	}
	fctx, cancel := context.WithTimeout(ctx, FlushBudget)
	defer cancel()
	done := make([]error, len(t.shutdown))
	var wg sync.WaitGroup
	for i, f := range t.shutdown {
		wg.Go(func() { done[i] = f(fctx) })
	}
	wg.Wait()
	return errors.Join(append(errs, done...)...)
}
