package modules

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Metered is what the Host offers a module that counts what it does,
// found by type assertion: a meter of the module's own, whose instruments
// the server exports with its other metrics (Prometheus, OTLP). Modules
// name them adhocd.<module>.<what> (docs/operations.md lists them).
type Metered interface {
	Meter() metric.Meter
}

// MeterOf returns the module's meter on h, or one that records nothing
// when the server exports no metrics.
func MeterOf(h Host) metric.Meter {
	if m, ok := h.(Metered); ok {
		return m.Meter()
	}
	return noop.NewMeterProvider().Meter("")
}

// Counter returns the Int64 counter name of the module on h, described by
// description; one that records nothing if the meter refuses it (a name
// that is not valid), which a test of the module would show.
func Counter(h Host, name, description string) metric.Int64Counter {
	c, err := MeterOf(h).Int64Counter(name, metric.WithDescription(description))
	if err != nil {
		h.Logger().Warn("metric not created", "name", name, "err", err)
		c, _ = noop.NewMeterProvider().Meter("").Int64Counter(name)
	}
	return c
}
