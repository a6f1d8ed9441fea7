package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/telemetry"
)

// errShutdown marks a failure caused by the consumer stopping: the message
// goes back to the server for another replica, never to the dead letters.
var errShutdown = errors.New("consumer stopping")

// errUndecodable marks a message that can never be handled.
var errUndecodable = errors.New("undecodable")

type envelopeKey struct{}

// envelopeFrom returns the event the decode middleware put in ctx.
func envelopeFrom(ctx context.Context) (events.Envelope, bool) {
	e, ok := ctx.Value(envelopeKey{}).(events.Envelope)
	return e, ok
}

// traced runs the handler in a consumer span that continues the producer's
// trace (NATS headers first, the envelope's traceparent for messages
// written without them).
func traced(consumer string) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			subject := msg.Metadata.Get(metaSubject)
			hdr := nats.Header{}
			for k, v := range msg.Metadata {
				if name, ok := strings.CutPrefix(k, metaHeader); ok {
					hdr.Set(name, v)
				}
			}
			var fallback struct {
				TraceParent string `json:"traceparent"`
				TraceState  string `json:"tracestate"`
			}
			if telemetry.HeaderCarrier(hdr).Get("traceparent") == "" {
				_ = json.Unmarshal(msg.Payload, &fallback)
			}
			ctx := telemetry.Extract(msg.Context(), hdr, fallback.TraceParent, fallback.TraceState)
			kind := subject[strings.LastIndexByte(subject, '.')+1:]
			ctx, span := tracer().Start(ctx, "process "+kind, trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(append(telemetry.MessagingAttributes(semconv.MessagingOperationTypeProcess, subject, msg.UUID),
					semconv.MessagingConsumerGroupName(consumer))...))
			defer span.End()
			msg.SetContext(ctx)
			out, err := h(msg)
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, "handler failed")
			}
			return out, err
		}
	}
}

// decoded checks the message is an event of its subject and puts it in the
// context; one that is not is dead-lettered at once, by the poison queue
// around this middleware.
func decoded(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		e, err := decode(msg.Metadata.Get(metaSubject), msg.Payload)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errUndecodable, err)
		}
		e.Sequence, _ = strconv.ParseUint(msg.Metadata.Get(metaSequence), 10, 64)
		msg.SetContext(context.WithValue(msg.Context(), envelopeKey{}, e))
		return h(msg)
	}
}

// coalescer handles one message per workspace at a time. Handlers act on
// the workspace's latest state, so while one runs only the newest message
// of its workspace waits: an older waiting one is settled (acked) as
// covered. A burst on one workspace therefore holds one waiting slot, not
// the whole ack window.
type coalescer struct {
	mu    sync.Mutex
	slots map[string]*waiter // present: a handler runs; value: who waits (nil: none)
}

type waiter struct {
	seq  uint64
	turn chan bool // true: run; false: covered by a newer message
}

func (c *coalescer) middleware(stop context.Context) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			e, _ := envelopeFrom(msg.Context())
			run, err := c.acquire(stop, e.Subject, e.Sequence)
			if err != nil || !run {
				return nil, err
			}
			defer c.release(e.Subject)
			return h(msg)
		}
	}
}

// acquire waits for key's turn. run is false when a newer message of key
// took this one's place; err is errShutdown when stop ends first.
func (c *coalescer) acquire(stop context.Context, key string, seq uint64) (run bool, err error) {
	c.mu.Lock()
	if c.slots == nil {
		c.slots = map[string]*waiter{}
	}
	w, busy := c.slots[key]
	if !busy {
		c.slots[key] = nil
		c.mu.Unlock()
		return true, nil
	}
	if w != nil && w.seq > seq {
		c.mu.Unlock()
		return false, nil // arrived late: the newer one that waits covers it
	}
	me := &waiter{seq: seq, turn: make(chan bool, 1)}
	c.slots[key] = me
	c.mu.Unlock()
	if w != nil {
		w.turn <- false
	}
	select {
	case run := <-me.turn:
		return run, nil
	case <-stop.Done():
	}
	c.mu.Lock()
	if c.slots[key] == me { // still waiting: leave the queue
		c.slots[key] = nil
		c.mu.Unlock()
		return false, errShutdown
	}
	c.mu.Unlock()
	if <-me.turn { // given the turn meanwhile: pass it on
		c.release(key)
	}
	return false, errShutdown
}

// release ends key's turn and hands it to the waiting message, if any.
func (c *coalescer) release(key string) {
	c.mu.Lock()
	w := c.slots[key]
	if w == nil {
		delete(c.slots, key)
		c.mu.Unlock()
		return
	}
	c.slots[key] = nil
	c.mu.Unlock()
	w.turn <- true
}

// limit bounds how many handlers run at once. Waiting for a workspace's
// turn happens before it, so a queued message holds no slot.
func limit(stop context.Context, n int) message.HandlerMiddleware {
	slots := make(chan struct{}, n)
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			select {
			case slots <- struct{}{}:
			case <-stop.Done():
				return nil, errShutdown
			}
			defer func() { <-slots }()
			return h(msg)
		}
	}
}

type attemptKey struct{}

// attempts numbers each try of a message (inside the retry middleware),
// calls the handler with it, counts the outcome, and turns a failure while
// stopping into errShutdown.
func (l *Log) attempts(stop context.Context, o DurableOptions, h Handler) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		ctx := msg.Context()
		n, _ := ctx.Value(attemptKey{}).(*int)
		*n++
		e, _ := envelopeFrom(ctx)
		// A retry here, or a first try of a message the server delivered
		// before (its holder died, or let it go).
		if *n > 1 || msg.Metadata.Get(metaDelivered) != "1" {
			l.redelivered.Add(stop, 1, metric.WithAttributes(attribute.String("consumer", o.Name)))
		}
		// The last try here, or the server's last delivery (after crashes
		// or shutdowns): either way nothing comes after it.
		delivered, _ := strconv.Atoi(msg.Metadata.Get(metaDelivered))
		last := *n >= o.MaxDeliver || delivered >= o.MaxDeliver
		// Recovered here, not further out, so a panic counts as a failed
		// attempt like any other.
		_, err := middleware.Recoverer(func(*message.Message) ([]*message.Message, error) {
			return nil, h(ctx, e, *n, last)
		})(msg)
		switch {
		case err == nil:
			l.count(stop, o.Name, "ok")
			return nil, nil
		case stop.Err() != nil:
			return nil, backoff.Permanent(fmt.Errorf("%w: %w", errShutdown, err)) // no retry while stopping
		case !last:
			l.count(stop, o.Name, "retry")
		}
		var panicked middleware.RecoveredPanicError
		if errors.As(err, &panicked) {
			l.panics.Add(stop, 1, metric.WithAttributes(attribute.String("consumer", o.Name)))
			err = fmt.Errorf("handler panic: %v", panicked.V) // the stack is in the log, not in the reason
		}
		return nil, fmt.Errorf("failed %d times: %w", *n, err)
	}
}

// countAttempts gives attempts its counter, once per message.
func countAttempts(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		n := 0
		msg.SetContext(context.WithValue(msg.Context(), attemptKey{}, &n))
		return h(msg)
	}
}

// deadLetters is the poison queue's publisher: it stores a message that
// can never be handled on berth.deadletter.<consumer>, with the reason.
type deadLetters struct {
	l        *Log
	consumer string
}

func (d deadLetters) Publish(_ string, msgs ...*message.Message) error {
	for _, msg := range msgs {
		// The handler's context may be spent (a timeout); the dead letter
		// must still be written.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(msg.Context()), 5*time.Second)
		reason := msg.Metadata.Get(middleware.ReasonForPoisonedKey)
		err := d.l.DeadLetter(ctx, d.consumer, msg.Metadata.Get(metaSubject), msg.Payload, reason)
		cancel()
		if err != nil {
			return fmt.Errorf("dead-letter %s: %w", msg.Metadata.Get(metaSubject), err)
		}
		d.l.count(ctx, d.consumer, "dead_letter")
	}
	return nil
}

func (deadLetters) Close() error { return nil }
