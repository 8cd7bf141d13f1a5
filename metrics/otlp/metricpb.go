package otlp

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	cpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	rpb "go.opentelemetry.io/proto/otlp/resource/v1"
)

// The conversion of the SDK's collected metrics into the OTLP protobuf
// messages (opentelemetry-proto metrics/v1), written for adhocd: the SDK
// keeps its own conversion internal to otlpmetrichttp. It covers what the
// SDK's aggregations produce (sums, gauges, explicit-bucket histograms, for
// int64 and float64); a metric of any other kind is left out and named in
// the error, so the rest is still sent.

// errUnsupported marks a metric the conversion does not express.
var errUnsupported = errors.New("otlp: unsupported metric data")

// toResourceMetrics converts one collection.
func toResourceMetrics(rm *metricdata.ResourceMetrics) (*metricpb.ResourceMetrics, error) {
	out := &metricpb.ResourceMetrics{Resource: toResource(rm.Resource)}
	if rm.Resource != nil {
		out.SchemaUrl = rm.Resource.SchemaURL()
	}
	var errs []error
	for _, sm := range rm.ScopeMetrics {
		spb := &metricpb.ScopeMetrics{Scope: toScope(sm.Scope), SchemaUrl: sm.Scope.SchemaURL}
		for _, m := range sm.Metrics {
			mpb, err := toMetric(m)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			spb.Metrics = append(spb.Metrics, mpb)
		}
		out.ScopeMetrics = append(out.ScopeMetrics, spb)
	}
	return out, errors.Join(errs...)
}

func toResource(r *resource.Resource) *rpb.Resource {
	if r == nil {
		return nil
	}
	return &rpb.Resource{Attributes: toKeyValues(r.Set())}
}

func toScope(s instrumentation.Scope) *cpb.InstrumentationScope {
	return &cpb.InstrumentationScope{Name: s.Name, Version: s.Version, Attributes: toKeyValues(&s.Attributes)}
}

func toMetric(m metricdata.Metrics) (*metricpb.Metric, error) {
	out := &metricpb.Metric{Name: m.Name, Description: m.Description, Unit: m.Unit}
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		out.Data = &metricpb.Metric_Sum{Sum: &metricpb.Sum{IsMonotonic: d.IsMonotonic,
			AggregationTemporality: toTemporality(d.Temporality), DataPoints: toNumberPoints(d.DataPoints, intValue)}}
	case metricdata.Sum[float64]:
		out.Data = &metricpb.Metric_Sum{Sum: &metricpb.Sum{IsMonotonic: d.IsMonotonic,
			AggregationTemporality: toTemporality(d.Temporality), DataPoints: toNumberPoints(d.DataPoints, floatValue)}}
	case metricdata.Gauge[int64]:
		out.Data = &metricpb.Metric_Gauge{Gauge: &metricpb.Gauge{DataPoints: toNumberPoints(d.DataPoints, intValue)}}
	case metricdata.Gauge[float64]:
		out.Data = &metricpb.Metric_Gauge{Gauge: &metricpb.Gauge{DataPoints: toNumberPoints(d.DataPoints, floatValue)}}
	case metricdata.Histogram[int64]:
		out.Data = &metricpb.Metric_Histogram{Histogram: &metricpb.Histogram{
			AggregationTemporality: toTemporality(d.Temporality), DataPoints: toHistogramPoints(d.DataPoints)}}
	case metricdata.Histogram[float64]:
		out.Data = &metricpb.Metric_Histogram{Histogram: &metricpb.Histogram{
			AggregationTemporality: toTemporality(d.Temporality), DataPoints: toHistogramPoints(d.DataPoints)}}
	default:
		return nil, fmt.Errorf("%w: %s is %T", errUnsupported, m.Name, m.Data)
	}
	return out, nil
}

func toTemporality(t metricdata.Temporality) metricpb.AggregationTemporality {
	switch t {
	case metricdata.DeltaTemporality:
		return metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA
	case metricdata.CumulativeTemporality:
		return metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE
	}
	return metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_UNSPECIFIED
}

// intValue and floatValue set a number data point's value of either type.
func intValue(p *metricpb.NumberDataPoint, v int64) {
	p.Value = &metricpb.NumberDataPoint_AsInt{AsInt: v}
}

func floatValue(p *metricpb.NumberDataPoint, v float64) {
	p.Value = &metricpb.NumberDataPoint_AsDouble{AsDouble: v}
}

func toNumberPoints[N int64 | float64](pts []metricdata.DataPoint[N], set func(*metricpb.NumberDataPoint, N)) []*metricpb.NumberDataPoint {
	out := make([]*metricpb.NumberDataPoint, 0, len(pts))
	for _, dp := range pts {
		p := &metricpb.NumberDataPoint{Attributes: toKeyValues(&dp.Attributes),
			StartTimeUnixNano: unixNano(dp.StartTime), TimeUnixNano: unixNano(dp.Time), Exemplars: toExemplars(dp.Exemplars)}
		set(p, dp.Value)
		out = append(out, p)
	}
	return out
}

func toHistogramPoints[N int64 | float64](pts []metricdata.HistogramDataPoint[N]) []*metricpb.HistogramDataPoint {
	out := make([]*metricpb.HistogramDataPoint, 0, len(pts))
	for _, dp := range pts {
		sum := float64(dp.Sum)
		p := &metricpb.HistogramDataPoint{Attributes: toKeyValues(&dp.Attributes),
			StartTimeUnixNano: unixNano(dp.StartTime), TimeUnixNano: unixNano(dp.Time),
			Count: dp.Count, Sum: &sum, BucketCounts: dp.BucketCounts, ExplicitBounds: dp.Bounds,
			Exemplars: toExemplars(dp.Exemplars)}
		if v, ok := dp.Min.Value(); ok {
			m := float64(v)
			p.Min = &m
		}
		if v, ok := dp.Max.Value(); ok {
			m := float64(v)
			p.Max = &m
		}
		out = append(out, p)
	}
	return out
}

func toExemplars[N int64 | float64](exs []metricdata.Exemplar[N]) []*metricpb.Exemplar {
	if len(exs) == 0 {
		return nil
	}
	out := make([]*metricpb.Exemplar, 0, len(exs))
	for _, e := range exs {
		p := &metricpb.Exemplar{FilteredAttributes: keyValues(e.FilteredAttributes),
			TimeUnixNano: unixNano(e.Time), SpanId: e.SpanID, TraceId: e.TraceID}
		switch v := any(e.Value).(type) {
		case int64:
			p.Value = &metricpb.Exemplar_AsInt{AsInt: v}
		case float64:
			p.Value = &metricpb.Exemplar_AsDouble{AsDouble: v}
		}
		out = append(out, p)
	}
	return out
}

func unixNano(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

func toKeyValues(set *attribute.Set) []*cpb.KeyValue {
	if set == nil || set.Len() == 0 {
		return nil
	}
	return keyValues(set.ToSlice())
}

func keyValues(kvs []attribute.KeyValue) []*cpb.KeyValue {
	if len(kvs) == 0 {
		return nil
	}
	out := make([]*cpb.KeyValue, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, &cpb.KeyValue{Key: string(kv.Key), Value: toAnyValue(kv.Value)})
	}
	return out
}

// toAnyValue converts an attribute value, slices as arrays of values.
func toAnyValue(v attribute.Value) *cpb.AnyValue {
	switch v.Type() {
	case attribute.BOOL:
		return &cpb.AnyValue{Value: &cpb.AnyValue_BoolValue{BoolValue: v.AsBool()}}
	case attribute.INT64:
		return &cpb.AnyValue{Value: &cpb.AnyValue_IntValue{IntValue: v.AsInt64()}}
	case attribute.FLOAT64:
		return &cpb.AnyValue{Value: &cpb.AnyValue_DoubleValue{DoubleValue: v.AsFloat64()}}
	case attribute.STRING:
		return &cpb.AnyValue{Value: &cpb.AnyValue_StringValue{StringValue: v.AsString()}}
	case attribute.BOOLSLICE:
		return array(v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		return array(v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		return array(v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		return array(v.AsStringSlice(), attribute.StringValue)
	}
	return &cpb.AnyValue{Value: &cpb.AnyValue_StringValue{StringValue: v.String()}}
}

func array[T any](vals []T, wrap func(T) attribute.Value) *cpb.AnyValue {
	arr := &cpb.ArrayValue{Values: make([]*cpb.AnyValue, 0, len(vals))}
	for _, v := range vals {
		arr.Values = append(arr.Values, toAnyValue(wrap(v)))
	}
	return &cpb.AnyValue{Value: &cpb.AnyValue_ArrayValue{ArrayValue: arr}}
}
