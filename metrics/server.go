package metrics

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/adhocd/adhocd/c2s"
)

// serverObserver implements server.Observer on the instruments.
type serverObserver struct{ t *Telemetry }

// Interface guards: what the server finds on the observer.
var (
	_ c2s.Observer     = serverObserver{}
	_ c2s.SMObserver   = serverObserver{}
	_ c2s.StanzaTracer = serverObserver{}
)

// Server returns the observer to give the server (server.WithObserver).
func (t *Telemetry) Server() serverObserver { return serverObserver{t} }

var bg = context.Background()

func (o serverObserver) Connection(event string) {
	switch event {
	case "accepted":
		o.t.accepted.Add(bg, 1)
		o.t.connections.Add(bg, 1)
	case "closed":
		o.t.connections.Add(bg, -1)
	case "refused":
		o.t.refused.Add(bg, 1)
	}
}

func (o serverObserver) Login(mechanism, outcome string) {
	o.t.logins.Add(bg, 1, metric.WithAttributes(attribute.String("mechanism", mechanism), attribute.String("outcome", outcome)))
}

func (o serverObserver) StanzaIn(kind string) {
	o.t.stanzas.Add(bg, 1, metric.WithAttributes(attribute.String("direction", "in"), attribute.String("kind", kind)))
}

func (o serverObserver) StanzaOut(kind string) {
	o.t.stanzas.Add(bg, 1, metric.WithAttributes(attribute.String("direction", "out"), attribute.String("kind", kind)))
}

func (o serverObserver) StreamError(condition string) {
	o.t.streamErrs.Add(bg, 1, metric.WithAttributes(attribute.String("condition", condition)))
}

func (o serverObserver) SessionBound(delta int) { o.t.bound.Add(bg, int64(delta)) }

// SMEnabled implements c2s.SMObserver.
func (o serverObserver) SMEnabled() { o.t.smEnabled.Add(bg, 1) }

// SMResumed implements c2s.SMObserver.
func (o serverObserver) SMResumed() { o.t.smResumed.Add(bg, 1) }

// SMResumeFailed implements c2s.SMObserver.
func (o serverObserver) SMResumeFailed(reason string) {
	o.t.smResumeFailed.Add(bg, 1, metric.WithAttributes(attribute.String("reason", reason)))
}

func noEnd() {}

// TraceStanza implements server.StanzaTracer: a server span "xmpp KIND"
// per stanza, parent of the spans of what handles it. Without a span
// exporter it returns ctx as it is, at no cost.
func (o serverObserver) TraceStanza(ctx context.Context, kind string) (context.Context, func()) {
	if !o.t.tracing {
		return ctx, noEnd
	}
	ctx, span := o.t.tracer.Start(ctx, "xmpp "+kind, trace.WithSpanKind(trace.SpanKindServer))
	return ctx, func() { span.End() }
}
