// Package telemetry sets up what every Berth service reports: structured
// slog logs, OpenTelemetry metrics exported in Prometheus format, traces
// exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set, and W3C
// trace-context propagation (HTTP headers, NATS headers, event envelopes).
package telemetry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// NewLogger returns a slog logger writing to w. format is "json" or "text";
// level is debug, info, warn or error.
func NewLogger(w io.Writer, format, level, service string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	switch strings.ToLower(format) {
	case "json":
		h = slog.NewJSONHandler(w, opts)
	case "text":
		h = slog.NewTextHandler(w, opts)
	default:
		return nil, fmt.Errorf("log format %q: want json or text", format)
	}
	return slog.New(h).With("service", service), nil
}

// Telemetry holds a service's meter and tracer and the /metrics handler.
type Telemetry struct {
	Meter          metric.Meter
	Tracer         trace.Tracer
	TracerProvider trace.TracerProvider
	Handler        http.Handler
	provider       *sdkmetric.MeterProvider
	tracing        *sdktrace.TracerProvider
}

// New sets up metrics (Prometheus exposition of OpenTelemetry instruments,
// plus Go runtime metrics), traces and the W3C trace-context propagator.
// Traces go to an OTLP/HTTP collector when the standard
// OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set, with the
// other OTEL_* variables honoured by the exporter and the batch processor;
// without one, spans still mint the trace ids events carry, and nothing
// leaves the process.
func New(service string) (*Telemetry, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName("berth-"+service)))
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	tp, err := newTracerProvider(res, os.Getenv)
	if err != nil {
		_ = mp.Shutdown(context.Background())
		return nil, err
	}
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return &Telemetry{
		Meter:          mp.Meter("berth/" + service),
		Tracer:         tp.Tracer("berth/" + service),
		TracerProvider: tp,
		Handler:        promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		provider:       mp,
		tracing:        tp,
	}, nil
}

// newTracerProvider returns the service's tracer provider, exporting over
// OTLP/HTTP when an endpoint is configured. Only http/protobuf is built in
// (gRPC would add a large dependency to every service); a collector takes
// both on its default ports (4318 for HTTP).
func newTracerProvider(res *resource.Resource, getenv func(string) string) (*sdktrace.TracerProvider, error) {
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
		proto := cmp.Or(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), getenv("OTEL_EXPORTER_OTLP_PROTOCOL"), "http/protobuf")
		if proto != "http/protobuf" {
			return nil, fmt.Errorf("bad configuration: OTEL_EXPORTER_OTLP_PROTOCOL=%q: Berth exports traces over http/protobuf only (a collector's OTLP/HTTP port, 4318 by default)", proto)
		}
		exp, err := otlptracehttp.New(context.Background()) // reads the OTEL_EXPORTER_OTLP_* variables
		if err != nil {
			return nil, fmt.Errorf("otlp trace exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp)) // OTEL_BSP_* tune it
	}
	return sdktrace.NewTracerProvider(opts...), nil
}

// Shutdown flushes the meter and tracer providers (spans not yet exported
// are sent now).
func (t *Telemetry) Shutdown(ctx context.Context) error {
	return errors.Join(t.tracing.Shutdown(ctx), t.provider.Shutdown(ctx))
}

// TraceContext returns the W3C traceparent and tracestate of ctx's span, for
// writing into an event envelope.
func TraceContext(ctx context.Context) (traceparent, tracestate string) {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier.Get("traceparent"), carrier.Get("tracestate")
}

// LaunchHistogram is berth.launch.duration, which two services record: the
// provisioner when a start's outcome is recorded (stage "running"),
// router-sync when its route is written (stage "routed"). nil m records
// nothing.
func LaunchHistogram(m metric.Meter) metric.Float64Histogram {
	if m == nil {
		m = noop.NewMeterProvider().Meter("")
	}
	h, _ := m.Float64Histogram("berth.launch.duration", metric.WithUnit("s"), // fails only on a bad name or unit
		metric.WithDescription("From a start request to its outcome, by stage (running: recorded by the provisioner; routed: written by router-sync) and outcome"),
		metric.WithExplicitBucketBoundaries(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60))
	return h
}
