// Package telemetry sets up what every Berth service reports: structured
// slog logs, OpenTelemetry metrics exported in Prometheus format, and W3C
// trace-context propagation.
package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
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
	Meter    metric.Meter
	Tracer   trace.Tracer
	Handler  http.Handler
	provider *sdkmetric.MeterProvider
}

// New sets up metrics (Prometheus exposition of OpenTelemetry instruments,
// plus Go runtime metrics) and the W3C trace-context propagator. Spans are
// created through the global tracer provider, which an operator can point at
// an exporter; by default they only carry trace ids across services.
func New(service string) (*Telemetry, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	// A tracer provider without an exporter still mints trace ids, so every
	// event carries a traceparent that links api -> provisioner -> router-sync.
	otel.SetTracerProvider(sdktrace.NewTracerProvider())
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return &Telemetry{
		Meter:    mp.Meter("berth/" + service),
		Tracer:   otel.Tracer("berth/" + service),
		Handler:  promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		provider: mp,
	}, nil
}

// Shutdown flushes the meter provider.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	return t.provider.Shutdown(ctx)
}

// TraceContext returns the W3C traceparent and tracestate of ctx's span, for
// writing into an event envelope.
func TraceContext(ctx context.Context) (traceparent, tracestate string) {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier.Get("traceparent"), carrier.Get("tracestate")
}
