package metrics

import (
	"context"
	"fmt"
	"os"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/adhocd/adhocd/server/config"
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
		topts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(c.Endpoint)}
		mopts := []otlpmetrichttp.Option{otlpmetrichttp.WithEndpoint(c.Endpoint)}
		if c.Insecure {
			topts = append(topts, otlptracehttp.WithInsecure())
			mopts = append(mopts, otlpmetrichttp.WithInsecure())
		}
		te, err := otlptracehttp.New(ctx, topts...)
		if err != nil {
			return nil, nil, fmt.Errorf("metrics: otlp traces: %w", err)
		}
		me, err := otlpmetrichttp.New(ctx, mopts...)
		if err != nil {
			return nil, nil, fmt.Errorf("metrics: otlp metrics: %w", err)
		}
		return []sdkmetric.Reader{sdkmetric.NewPeriodicReader(me)}, []sdktrace.SpanExporter{te}, nil
	}
	return nil, nil, nil
}
