package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/metrics/otlp"
)

// sdkDisabled reports OTEL_SDK_DISABLED=true, the SDK's standard switch
// for turning telemetry off without touching the configuration.
func sdkDisabled() bool {
	return strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true")
}

// exporters builds what otel.exporter asks for: nothing, spans to standard
// output, or spans and metrics over OTLP. OTEL_SDK_DISABLED=true makes it
// nothing.
func exporters(ctx context.Context, c config.OTel, log *slog.Logger) ([]sdkmetric.Reader, []sdktrace.SpanExporter, error) {
	if c.Exporter != "none" && sdkDisabled() {
		log.Info("OTEL_SDK_DISABLED=true: no traces or metrics exported", "otel.exporter", c.Exporter)
		return nil, nil, nil
	}
	switch c.Exporter {
	case "stdout":
		e, err := stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
		if err != nil {
			return nil, nil, fmt.Errorf("metrics: stdout exporter: %w", err)
		}
		return nil, []sdktrace.SpanExporter{e}, nil
	case "otlp":
		ex, err := otlp.New(ctx, c)
		if err != nil {
			return nil, nil, fmt.Errorf("metrics: %w", err)
		}
		return []sdkmetric.Reader{sdkmetric.NewPeriodicReader(ex.Metrics)}, []sdktrace.SpanExporter{ex.Spans}, nil
	}
	return nil, nil, nil
}
