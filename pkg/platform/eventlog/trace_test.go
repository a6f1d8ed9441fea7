package eventlog_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
)

// TestConsumeContinuesTrace: the append is a producer span whose context
// travels in the NATS headers; the consumer's span is its child and the
// handler runs inside it. An event appended outside any span still gets a
// traceparent in its envelope.
func TestConsumeContinuesTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := eventlog.Open(ctx, natstest.Conn(t, natstest.Server(t)), eventlog.Options{})
	require.NoError(t, err)

	reqCtx, req := tp.Tracer("test").Start(ctx, "http request")
	id := uuid.NewString()
	_, err = l.Append(reqCtx, ev(t, id, &events.Created{Name: "traced", Owner: "o"}), 0)
	require.NoError(t, err)
	req.End()
	untraced := uuid.NewString()
	_, err = l.Append(context.Background(), ev(t, untraced, &events.Created{Name: "untraced", Owner: "o"}), 0)
	require.NoError(t, err)

	got := make(chan trace.SpanContext, 2)
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		_ = l.Consume(ctx, quiet, eventlog.DurableOptions{Name: "trace"}, func(ctx context.Context, e events.Envelope, _ int, _ bool) error {
			if e.Subject == id {
				got <- trace.SpanContextFromContext(ctx)
			}
			return nil
		})
	}()
	var handled trace.SpanContext
	select {
	case handled = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("event not handled")
	}
	assert.Equal(t, req.SpanContext().TraceID(), handled.TraceID(), "the handler runs in the request's trace")

	spans := map[string]sdktrace.ReadOnlySpan{}
	require.Eventually(t, func() bool {
		for _, s := range rec.Ended() {
			if s.SpanContext().TraceID() == req.SpanContext().TraceID() {
				spans[s.Name()] = s
			}
		}
		return spans["process created"] != nil
	}, 5*time.Second, 10*time.Millisecond)
	producer, consumer := spans["append berth.workspace.created"], spans["process created"]
	require.NotNil(t, producer)
	assert.Equal(t, trace.SpanKindProducer, producer.SpanKind())
	assert.Equal(t, req.SpanContext().SpanID(), producer.Parent().SpanID())
	assert.Equal(t, trace.SpanKindConsumer, consumer.SpanKind())
	assert.Equal(t, producer.SpanContext().SpanID(), consumer.Parent().SpanID(), "the consumer continues the producer's span")
	assert.Equal(t, handled.SpanID(), consumer.SpanContext().SpanID())

	evs, err := l.Read(ctx, untraced)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Regexp(t, `^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`, evs[0].TraceParent, "an event written outside a request starts its own trace")
}
