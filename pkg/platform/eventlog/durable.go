package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/berthdev/berth/pkg/events"
)

// Names of the dead-letter stream and its headers (see pkg/events).
const (
	DeadLetterStream       = events.DeadLetterStream
	DeadLetterReasonHeader = events.DeadLetterReasonHeader
	OriginalSubjectHeader  = events.OriginalSubjectHeader
)

// Handler handles one event. attempt counts tries from 1; last is true on
// the final one, when the handler should record a failure instead of
// asking for another retry. A returned error retries the message after a
// backoff, or dead-letters it after the last attempt.
type Handler func(ctx context.Context, e events.Envelope, attempt int, last bool) error

// DurableOptions configure a durable consumer.
type DurableOptions struct {
	Name       string   // durable name, shared by every replica of a service
	Subjects   []string // filter; default every workspace subject
	MaxDeliver int      // attempts before dead-lettering (default 6)
	// AckWait is how long a message may go without news from the instance
	// holding it before the server hands it to another (default 3s). Every
	// message this instance holds gets an in-progress signal every
	// AckWait/3, so long work is never redelivered while its holder lives,
	// and a dead holder's work moves on within AckWait.
	AckWait     time.Duration
	Concurrency int // messages held at once is twice this (default 8); one handled at a time per workspace
	// RetryInterval is the first retry's delay (default 1s), doubling up
	// to RetryMaxInterval (default 30s).
	RetryInterval, RetryMaxInterval time.Duration
	// Timeout bounds one attempt (default 1h: an archive of a large home).
	Timeout time.Duration
}

func (o *DurableOptions) defaults() {
	if o.MaxDeliver == 0 {
		o.MaxDeliver = 6
	}
	if o.AckWait == 0 {
		o.AckWait = 3 * time.Second
	}
	if o.Concurrency == 0 {
		o.Concurrency = 8
	}
	if len(o.Subjects) == 0 {
		o.Subjects = []string{events.WorkspaceEvents}
	}
	if o.RetryInterval == 0 {
		o.RetryInterval = time.Second
	}
	if o.RetryMaxInterval == 0 {
		o.RetryMaxInterval = 30 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = time.Hour
	}
}

// maxAckPending bounds what the server hands one instance, so a dead
// instance strands at most this many messages (for one AckWait).
func (o DurableOptions) maxAckPending() int { return o.Concurrency * 2 }

// ErrConsumerClosed is returned by Consume when the server side of the
// consumer went away (deleted, or the stream was recreated); the caller's
// supervisor starts it again.
var ErrConsumerClosed = errors.New("consumer closed by the server")

// Consume runs a durable consumer on a watermill router until ctx ends:
// at-least-once delivery, handled concurrently across workspaces and one
// at a time within one. Around the handler, outermost first: a consumer
// span continuing the producer's trace, the poison queue (dead letters
// with the reason), decoding (a message that is not an event of its
// subject is poison), the per-workspace coalescer, the concurrency limit,
// retry with exponential backoff, a timeout per attempt, and panic
// recovery (in attempts, so a panic counts as a failed attempt). It returns nil when
// ctx ends and an error when the consumer cannot run.
func (l *Log) Consume(ctx context.Context, log *slog.Logger, o DurableOptions, h Handler) error {
	o.defaults()
	if err := l.EnsureDeadLetters(ctx); err != nil {
		return err
	}
	cons, redrive, err := l.durables(ctx, o)
	if err != nil {
		return err
	}
	// When the server ends either consumer (deleted, the stream
	// recreated), the whole router stops and Consume says so.
	var gone atomic.Bool
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	router, err := l.router(ctx, log, o)
	if err != nil {
		return err
	}
	lag, err := l.observeLag(cons, o.Name)
	if err != nil {
		return err
	}
	defer func() { _ = lag.Unregister() }()
	sub := newSubscriber(cons, log, o)
	retries := newSubscriber(redrive, log, o)
	retries.redrive = true
	sub.gone = func() { gone.Store(true); stop() }
	retries.gone = sub.gone
	handle := message.NoPublishHandlerFunc(func(msg *message.Message) error {
		_, err := l.attempts(ctx, o, h)(msg)
		return err
	})
	router.AddConsumerHandler(o.Name, o.Name, sub, handle)
	router.AddConsumerHandler(o.Name+RedriveSuffix, o.Name+RedriveSuffix, retries, handle)
	err = router.Run(ctx)
	// The router stops waiting for handlers after its close timeout; the
	// messages they hold are still kept alive and settled before Consume
	// returns, so a restarted Consume never runs beside an old handler.
	sub.wait()
	retries.wait()
	if err != nil {
		return fmt.Errorf("consume %s: %w", o.Name, err)
	}
	if gone.Load() {
		return fmt.Errorf("consume %s: %w", o.Name, ErrConsumerClosed)
	}
	return nil
}

// durables creates or updates the consumer's two durables: its work on the
// log, and the retries admins ask for on the dead-letter stream.
func (l *Log) durables(ctx context.Context, o DurableOptions) (work, redrive jetstream.Consumer, err error) {
	work, err = l.js.CreateOrUpdateConsumer(ctx, events.Stream, jetstream.ConsumerConfig{
		Durable:        o.Name,
		FilterSubjects: o.Subjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        o.AckWait,
		MaxDeliver:     o.MaxDeliver, // bounds redeliveries after crashes; retries happen in-process
		MaxAckPending:  o.maxAckPending(),
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("consumer %s: %w: %w", o.Name, ErrUnavailable, err)
	}
	redrive, err = l.js.CreateOrUpdateConsumer(ctx, events.DeadLetterStream, jetstream.ConsumerConfig{
		Durable:       o.Name + RedriveSuffix,
		FilterSubject: events.RedriveSubjectPrefix + o.Name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    o.MaxDeliver,
		MaxAckPending: o.maxAckPending(),
		DeliverPolicy: jetstream.DeliverNewPolicy, // a retry asked for while no consumer ran still waits for it
	})
	if err != nil {
		return nil, nil, fmt.Errorf("redrive consumer %s: %w: %w", o.Name, ErrUnavailable, err)
	}
	return work, redrive, nil
}

// observeLag reports the consumer's backlog whenever metrics are
// collected (a consumer info request each time).
func (l *Log) observeLag(cons jetstream.Consumer, name string) (metric.Registration, error) {
	pending := metric.WithAttributes(attribute.String("consumer", name), attribute.String("state", "pending"))
	unacked := metric.WithAttributes(attribute.String("consumer", name), attribute.String("state", "unacked"))
	reg, err := l.meter.RegisterCallback(func(ctx context.Context, obs metric.Observer) error {
		info, err := cons.Info(ctx)
		if err != nil {
			return nil // no figure this time; the next collection asks again
		}
		obs.ObserveInt64(l.lag, int64(info.NumPending), pending)
		obs.ObserveInt64(l.lag, int64(info.NumAckPending), unacked)
		return nil
	}, l.lag)
	if err != nil {
		return nil, fmt.Errorf("lag gauge %s: %w", name, err)
	}
	return reg, nil
}

// RedriveSuffix names a consumer's durable on the dead-letter stream, which
// reads the retries admins ask for (berth.redrive.<consumer>).
const RedriveSuffix = events.RedriveDurableSuffix

// router is the watermill router with the middlewares every handler of
// the consumer shares (one coalescer: a retry and a new event of one
// workspace never run at once).
func (l *Log) router(ctx context.Context, log *slog.Logger, o DurableOptions) (*message.Router, error) {
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NewSlogLoggerWithLevelMapping(log,
		map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})) // the router's own start/stop chatter is debug
	if err != nil {
		return nil, fmt.Errorf("router %s: %w", o.Name, err)
	}
	// Whatever fails while the consumer stops (a retry's wait cut short
	// included) goes back to the server, never to the dead letters.
	poison, err := middleware.PoisonQueueWithFilter(deadLetters{l: l, consumer: o.Name}, events.DeadLetterSubjectPrefix+o.Name,
		func(err error) bool { return !errors.Is(err, errShutdown) && ctx.Err() == nil })
	if err != nil {
		return nil, fmt.Errorf("poison queue %s: %w", o.Name, err)
	}
	turns := &coalescer{}
	router.AddMiddleware(
		traced(o.Name),
		poison,
		decoded,
		turns.middleware(ctx),
		countAttempts,
		// No ShouldRetry: watermill then draws a backoff for it too, and
		// every wait doubles twice. attempts stops the retries itself
		// (backoff.Permanent) when the consumer stops.
		middleware.Retry{MaxRetries: o.MaxDeliver - 1, InitialInterval: o.RetryInterval, MaxInterval: o.RetryMaxInterval,
			Multiplier: 2, ResetContextOnRetry: true, Logger: watermill.NewSlogLogger(log)}.Middleware,
		// Inside the retry: a message waiting out its backoff holds no slot.
		limit(ctx, o.Concurrency),
		middleware.Timeout(o.Timeout),
	)
	return router, nil
}

// count records one handled delivery of consumer with its outcome.
func (l *Log) count(ctx context.Context, consumer, outcome string) {
	l.handled.Add(ctx, 1, metric.WithAttributes(attribute.String("consumer", consumer), attribute.String("outcome", outcome)))
}

// EnsureDeadLetters checks that the dead-letter stream is declared (the
// API declares it; nobody else may).
func (l *Log) EnsureDeadLetters(ctx context.Context) error {
	if _, err := l.js.Stream(ctx, DeadLetterStream); err != nil {
		return fmt.Errorf("dead-letter stream: %w: %w", ErrUnavailable, err)
	}
	return nil
}

// DeadLetter stores a message that can never be handled on
// berth.deadletter.<consumer>, with why and where it came from.
func (l *Log) DeadLetter(ctx context.Context, consumer, subject string, data []byte, reason string) error {
	return l.DeadLetterMsg(ctx, consumer, subject, nil, data, reason)
}

// DeadLetterMsg is DeadLetter keeping the original message's headers too
// (a binary-mode CloudEvent's attributes are there).
func (l *Log) DeadLetterMsg(ctx context.Context, consumer, subject string, header nats.Header, data []byte, reason string) error {
	dl := nats.NewMsg(events.DeadLetterSubjectPrefix + consumer)
	for k, v := range header {
		// Nats-* headers steer the publish (a message id, an expected
		// stream): a sender's must not decide whether its dead letter is
		// stored.
		if !strings.HasPrefix(strings.ToLower(k), "nats-") {
			dl.Header[k] = append([]string(nil), v...)
		}
	}
	dl.Data = data
	dl.Header.Set(DeadLetterReasonHeader, reason)
	dl.Header.Set(OriginalSubjectHeader, subject)
	_, err := l.js.PublishMsg(ctx, dl)
	return err
}

// DeadLetterEntry is one stored dead letter, for operators.
type DeadLetterEntry struct {
	Sequence        uint64    `json:"sequence"`
	Time            time.Time `json:"time"`
	Consumer        string    `json:"consumer"`
	Reason          string    `json:"reason"`
	OriginalSubject string    `json:"original_subject"`
	// Event is the message as it was, when it is JSON; Raw holds it
	// otherwise (at most 4 KiB of it).
	Event json.RawMessage `json:"event,omitempty"`
	Raw   string          `json:"raw,omitempty"`
}

// ReadDeadLetters returns up to limit dead letters stored after sequence
// after, oldest first, and the sequence to pass as after for the next page
// (0: nothing more). Nothing is created on the server.
func (l *Log) ReadDeadLetters(ctx context.Context, after uint64, limit int) ([]DeadLetterEntry, uint64, error) {
	stream, err := l.js.Stream(ctx, DeadLetterStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("dead letters: %w: %w", ErrUnavailable, err)
	}
	last := stream.CachedInfo().State.LastSeq // fresh: the lookup just fetched it
	var out []DeadLetterEntry
	seq := after + 1
	for ; seq <= last && len(out) < limit; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("dead letter %d: %w: %w", seq, ErrUnavailable, err)
		}
		if !strings.HasPrefix(m.Subject, events.DeadLetterSubjectPrefix) {
			continue // an admin's retry, stored beside the dead letters
		}
		e := deadLetterEntry(m)
		out = append(out, e)
	}
	if seq > last {
		return out, 0, nil
	}
	return out, seq - 1, nil
}
