// Package otlp makes the OTLP exporters that otel.exporter: otlp asks for:
// OpenTelemetry's own, otlptracehttp and otlpmetrichttp (OTLP/HTTP with
// protobuf, the default), or otlptracegrpc and otlpmetricgrpc with
// otel.protocol: grpc. This package only wires them.
//
// The upstream exporters read the standard OTEL_EXPORTER_OTLP_* variables
// themselves (ENDPOINT, HEADERS, CERTIFICATE, CLIENT_CERTIFICATE and
// CLIENT_KEY, INSECURE, COMPRESSION, TIMEOUT, each with its _TRACES_ and
// _METRICS_ variant) and let explicit options override them. New passes as
// an option exactly what config.yaml sets, so a variable fills what
// config.yaml leaves empty and a key set in config.yaml wins. The transport
// is the one thing the exporters cannot choose for themselves: New reads
// otel.protocol, else OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or
// OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL.
//
// Why gRPC is offered: the HTTP exporters already link google.golang.org/grpc
// (their shared configuration imports grpc's credentials and the OTLP
// collector packages carry gRPC stubs), so the gRPC exporters add little to
// the binary, and some collectors and agents listen on OTLP/gRPC (4317)
// only.
package otlp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc/credentials"

	"github.com/adhocd/adhocd/config"
)

// The OTLP transports (the values of OTEL_EXPORTER_OTLP_PROTOCOL).
const (
	HTTPProtobuf = "http/protobuf"
	GRPC         = "grpc"
)

// Exporters are the span and metric exporters of one configuration.
type Exporters struct {
	Spans   sdktrace.SpanExporter
	Metrics sdkmetric.Exporter
}

// New makes the exporters for c. Nothing is sent, and no connection made,
// until the SDK exports.
func New(ctx context.Context, c config.OTel) (Exporters, error) {
	s, err := settle(c)
	if err != nil {
		return Exporters{}, err
	}
	tp, err := protocol(c.Protocol, "TRACES")
	if err != nil {
		return Exporters{}, err
	}
	mp, err := protocol(c.Protocol, "METRICS")
	if err != nil {
		return Exporters{}, err
	}
	var ex Exporters
	if tp == GRPC {
		ex.Spans, err = otlptracegrpc.New(ctx, s.traceGRPC()...)
	} else {
		ex.Spans, err = otlptracehttp.New(ctx, s.traceHTTP()...)
	}
	if err != nil {
		return Exporters{}, fmt.Errorf("otlp: %s trace exporter: %w", tp, err)
	}
	if mp == GRPC {
		ex.Metrics, err = otlpmetricgrpc.New(ctx, s.metricGRPC()...)
	} else {
		ex.Metrics, err = otlpmetrichttp.New(ctx, s.metricHTTP()...)
	}
	if err != nil {
		_ = ex.Spans.Shutdown(ctx)
		return Exporters{}, fmt.Errorf("otlp: %s metric exporter: %w", mp, err)
	}
	return ex, nil
}

// protocol is the transport of one signal: configured, else from the
// environment, else OTLP/HTTP.
func protocol(configured, signal string) (string, error) {
	p, from := configured, "otel.protocol"
	if p == "" {
		for _, name := range []string{"OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
			if v := strings.TrimSpace(os.Getenv(name)); v != "" {
				p, from = v, name
				break
			}
		}
	}
	switch p {
	case "", HTTPProtobuf:
		return HTTPProtobuf, nil
	case GRPC:
		return GRPC, nil
	}
	return "", fmt.Errorf("otlp: %s %q: adhocd exports over %s or %s", from, p, HTTPProtobuf, GRPC)
}

// settings is what config.yaml sets, in the terms of the exporters'
// options; a zero field is left to the environment.
type settings struct {
	hostPort    string   // endpoint as host:port
	url         *url.URL // endpoint as a URL, the base of the signal paths
	insecure    bool
	headers     map[string]string
	tls         *tls.Config // from ca_file
	compression string      // "", gzip or none
	timeout     time.Duration
}

func settle(c config.OTel) (settings, error) {
	s := settings{insecure: c.Insecure, compression: c.Compression, timeout: c.Timeout.D()}
	if strings.Contains(c.Endpoint, "://") {
		u, err := url.Parse(c.Endpoint)
		if err != nil {
			return settings{}, fmt.Errorf("otlp: otel.endpoint: %w", err)
		}
		s.url = u
	} else {
		s.hostPort = c.Endpoint
	}
	h, err := c.Headers.Map()
	if err != nil {
		return settings{}, fmt.Errorf("otlp: otel.headers: %w", err)
	}
	s.headers = h
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return settings{}, fmt.Errorf("otlp: otel.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return settings{}, fmt.Errorf("otlp: otel.ca_file %s: %w", c.CAFile, errNoCertificate)
		}
		s.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return s, nil
}

var errNoCertificate = errors.New("no PEM certificate in it")

// signalURL is the endpoint URL with the signal's path appended to its
// own, as OTEL_EXPORTER_OTLP_ENDPOINT is used.
func (s settings) signalURL(signal string) string {
	u := *s.url
	u.Path = path.Join("/", u.Path, signal)
	return u.String()
}

// exporterOptions are one exporter package's option constructors: the four
// exporters (traces and metrics, HTTP and gRPC) take the same settings
// through four distinct option types.
type exporterOptions[O any] struct {
	// endpointURL takes a URL; endpoint a host:port, with path (HTTP only,
	// nil for gRPC) giving the signal's path.
	endpointURL func(string) O
	endpoint    func(string) O
	path        func(string) O
	insecure    func() O
	headers     func(map[string]string) O
	tls         func(*tls.Config) O
	// gzip and none are the compression options; none is nil where the
	// exporter has none (gRPC).
	gzip, none func() O
	timeout    func(time.Duration) O
}

// options turns the settings into one exporter's options; signal is the
// HTTP path of its signal ("v1/traces"), unused over gRPC, where a URL's path
// means nothing.
func options[O any](s settings, x exporterOptions[O], signal string) []O {
	var o []O
	switch {
	case s.url != nil && x.path == nil: // gRPC: http:// means no TLS
		o = append(o, x.endpointURL(s.url.String()))
	case s.url != nil:
		o = append(o, x.endpointURL(s.signalURL(signal)))
	case s.hostPort != "":
		o = append(o, x.endpoint(s.hostPort))
		if x.path != nil {
			o = append(o, x.path("/"+signal))
		}
	}
	if s.insecure {
		o = append(o, x.insecure())
	}
	if s.headers != nil {
		o = append(o, x.headers(s.headers))
	}
	if s.tls != nil {
		o = append(o, x.tls(s.tls))
	}
	switch {
	case s.compression == "gzip":
		o = append(o, x.gzip())
	case s.compression == "none" && x.none != nil:
		o = append(o, x.none())
	}
	if s.timeout > 0 {
		o = append(o, x.timeout(s.timeout))
	}
	return o
}

func (s settings) traceHTTP() []otlptracehttp.Option {
	return options(s, exporterOptions[otlptracehttp.Option]{
		endpointURL: otlptracehttp.WithEndpointURL, endpoint: otlptracehttp.WithEndpoint, path: otlptracehttp.WithURLPath,
		insecure: otlptracehttp.WithInsecure, headers: otlptracehttp.WithHeaders, tls: otlptracehttp.WithTLSClientConfig,
		gzip:    func() otlptracehttp.Option { return otlptracehttp.WithCompression(otlptracehttp.GzipCompression) },
		none:    func() otlptracehttp.Option { return otlptracehttp.WithCompression(otlptracehttp.NoCompression) },
		timeout: otlptracehttp.WithTimeout,
	}, "v1/traces")
}

func (s settings) metricHTTP() []otlpmetrichttp.Option {
	return options(s, exporterOptions[otlpmetrichttp.Option]{
		endpointURL: otlpmetrichttp.WithEndpointURL, endpoint: otlpmetrichttp.WithEndpoint, path: otlpmetrichttp.WithURLPath,
		insecure: otlpmetrichttp.WithInsecure, headers: otlpmetrichttp.WithHeaders, tls: otlpmetrichttp.WithTLSClientConfig,
		gzip:    func() otlpmetrichttp.Option { return otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression) },
		none:    func() otlpmetrichttp.Option { return otlpmetrichttp.WithCompression(otlpmetrichttp.NoCompression) },
		timeout: otlpmetrichttp.WithTimeout,
	}, "v1/metrics")
}

// The gRPC exporters have no option for "no compression".

func (s settings) traceGRPC() []otlptracegrpc.Option {
	return options(s, exporterOptions[otlptracegrpc.Option]{
		endpointURL: otlptracegrpc.WithEndpointURL, endpoint: otlptracegrpc.WithEndpoint,
		insecure: otlptracegrpc.WithInsecure, headers: otlptracegrpc.WithHeaders,
		tls: func(c *tls.Config) otlptracegrpc.Option {
			return otlptracegrpc.WithTLSCredentials(credentials.NewTLS(c))
		},
		gzip:    func() otlptracegrpc.Option { return otlptracegrpc.WithCompressor("gzip") },
		timeout: otlptracegrpc.WithTimeout,
	}, "")
}

func (s settings) metricGRPC() []otlpmetricgrpc.Option {
	return options(s, exporterOptions[otlpmetricgrpc.Option]{
		endpointURL: otlpmetricgrpc.WithEndpointURL, endpoint: otlpmetricgrpc.WithEndpoint,
		insecure: otlpmetricgrpc.WithInsecure, headers: otlpmetricgrpc.WithHeaders,
		tls: func(c *tls.Config) otlpmetricgrpc.Option {
			return otlpmetricgrpc.WithTLSCredentials(credentials.NewTLS(c))
		},
		gzip:    func() otlpmetricgrpc.Option { return otlpmetricgrpc.WithCompressor("gzip") },
		timeout: otlpmetricgrpc.WithTimeout,
	}, "")
}
