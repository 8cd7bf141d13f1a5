package metrics

import (
	"context"
	"fmt"
	"os"

	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/metrics/otlp"
)

// exporters builds what otel.exporter asks for: nothing, spans to standard
// output, or spans and metrics over OTLP/HTTP.
func exporters(ctx context.Context, c config.OTel) ([]sdkmetric.Reader, []sdktrace.SpanExporter, error) {
	switch c.Exporter {
	case "stdout":
		e, err := stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
		if err != nil {
			return nil, nil, fmt.Errorf("metrics: stdout exporter: %w", err)
		}
		return nil, []sdktrace.SpanExporter{e}, nil
	case "otlp":
		oc := otlp.Config{Endpoint: c.Endpoint, Insecure: c.Insecure}
		te, err := otlp.NewTraceExporter(ctx, oc)
		if err != nil {
			return nil, nil, fmt.Errorf("metrics: otlp traces: %w", err)
		}
		me := otlp.NewMetricExporter(oc)
		return []sdkmetric.Reader{sdkmetric.NewPeriodicReader(me)}, []sdktrace.SpanExporter{te}, nil
	}
	return nil, nil, nil
}
