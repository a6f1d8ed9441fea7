package telemetry

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
)

// HeaderCarrier carries trace context in NATS message headers. Keys are
// written as the propagator names them (lower-case "traceparent",
// "tracestate"); nats.Header is case-sensitive, so Get also tries the
// canonical form a foreign publisher may have used.
type HeaderCarrier nats.Header

var _ propagation.TextMapCarrier = HeaderCarrier{}

func (c HeaderCarrier) Get(key string) string {
	if v := nats.Header(c).Get(key); v != "" {
		return v
	}
	for k, v := range c {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

func (c HeaderCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }

func (c HeaderCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

// Inject writes ctx's trace context into h.
func Inject(ctx context.Context, h nats.Header) {
	otel.GetTextMapPropagator().Inject(ctx, HeaderCarrier(h))
}

// Extract returns ctx carrying the trace context found in h, or, when h
// has none, in the event envelope's traceparent and tracestate.
func Extract(ctx context.Context, h nats.Header, traceparent, tracestate string) context.Context {
	if HeaderCarrier(h).Get("traceparent") != "" {
		return otel.GetTextMapPropagator().Extract(ctx, HeaderCarrier(h))
	}
	if traceparent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent, "tracestate": tracestate})
}

// MessagingAttributes are the semantic-convention attributes of a span
// about one NATS message.
func MessagingAttributes(op attribute.KeyValue, subject, messageID string) []attribute.KeyValue {
	return []attribute.KeyValue{
		semconv.MessagingSystemKey.String("nats"), op,
		semconv.MessagingDestinationName(subject), semconv.MessagingMessageID(messageID),
	}
}
