// Package eventlog is the JetStream-backed audit log: the stream, appends
// with per-subject optimistic concurrency and de-duplication, reads of one
// subject's history, and following the whole log into a projection.
package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/berthdev/berth/pkg/events"
)

// ErrConflict is returned by Append when the subject moved past the expected
// sequence: someone else wrote first. Re-read and retry.
var ErrConflict = errors.New("conflict: the subject changed since it was read")

// ErrUnavailable wraps failures to reach JetStream.
var ErrUnavailable = errors.New("event log unavailable")

// Options configure the stream.
type Options struct {
	// Replicas of the stream (1 for a single server, 3 in a cluster).
	Replicas int
	// DuplicateWindow is how long Nats-Msg-Id de-duplication remembers ids.
	DuplicateWindow time.Duration
	// Meter records append latency and outcomes; nil records nothing.
	Meter metric.Meter
}

// Log is the audit log.
type Log struct {
	js       jetstream.JetStream
	stream   jetstream.Stream
	appendMs metric.Float64Histogram
}

// Open creates or updates the stream and returns the log.
func Open(ctx context.Context, nc *nats.Conn, o Options) (*Log, error) {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.DuplicateWindow == 0 {
		o.DuplicateWindow = 2 * time.Minute
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        events.Stream,
		Description: "Berth audit log: one subject per workspace, plus the image catalog",
		Subjects:    events.StreamSubjects,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		Retention:   jetstream.LimitsPolicy,
		Duplicates:  o.DuplicateWindow,
		// The log is an audit trail: nothing is deleted or purged through
		// the API, and messages never expire.
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w: %w", events.Stream, ErrUnavailable, err)
	}
	meter := o.Meter
	if meter == nil {
		meter = noop.NewMeterProvider().Meter("")
	}
	appendMs, err := meter.Float64Histogram("berth.eventlog.append.duration", metric.WithUnit("ms"),
		metric.WithDescription("Append latency by event type and outcome (ok, conflict, error)"))
	if err != nil {
		return nil, fmt.Errorf("append histogram: %w", err)
	}
	return &Log{js: js, stream: stream, appendMs: appendMs}, nil
}

// JetStream exposes the context for other JetStream resources (KV buckets).
func (l *Log) JetStream() jetstream.JetStream { return l.js }

func subjectOf(e events.Envelope) string {
	if e.Subject == events.CatalogSubject {
		return events.CatalogSubject
	}
	return events.WorkspaceSubject(e.Subject)
}

// Append stores e if its subject's last sequence is still expected (0: the
// subject must be empty). The event id is the Nats-Msg-Id, so retrying an
// append that may have landed is safe. It returns the stored sequence.
func (l *Log) Append(ctx context.Context, e events.Envelope, expected uint64) (uint64, error) {
	if err := e.Validate(); err != nil {
		return 0, err
	}
	body, err := json.Marshal(e)
	if err != nil {
		return 0, fmt.Errorf("marshal event %s: %w", e.ID, err)
	}
	start := time.Now()
	outcome := "ok"
	defer func() {
		l.appendMs.Record(ctx, float64(time.Since(start).Microseconds())/1000, metric.WithAttributes(
			attribute.String("type", string(e.Type)), attribute.String("outcome", outcome)))
	}()
	msg := nats.NewMsg(subjectOf(e))
	msg.Data = body
	msg.Header.Set("Content-Type", "application/cloudevents+json")
	ack, err := l.js.PublishMsg(ctx, msg,
		jetstream.WithMsgID(e.ID),
		jetstream.WithExpectStream(events.Stream),
		jetstream.WithExpectLastSequencePerSubject(expected),
	)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			outcome = "conflict"
			return 0, fmt.Errorf("append %s to %s at %d: %w", e.Type, e.Subject, expected, ErrConflict)
		}
		outcome = "error"
		return 0, fmt.Errorf("append %s to %s: %w: %w", e.Type, e.Subject, ErrUnavailable, err)
	}
	return ack.Sequence, nil
}

// Read returns every event of one subject (a workspace id or
// events.CatalogSubject), oldest first.
func (l *Log) Read(ctx context.Context, subject string) ([]events.Envelope, error) {
	full := subject
	if subject != events.CatalogSubject {
		full = events.WorkspaceSubject(subject)
	}
	last, err := l.stream.GetLastMsgForSubject(ctx, full)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w: %w", subject, ErrUnavailable, err)
	}
	var (
		out       []events.Envelope
		decodeErr error
		done      = make(chan struct{})
		finish    = sync.OnceFunc(func() { close(done) })
	)
	cc, err := l.subscribe(ctx, []string{full}, func(seq uint64, e events.Envelope, err error) {
		if seq > last.Sequence {
			return
		}
		if err != nil && decodeErr == nil {
			decodeErr = fmt.Errorf("message %d: %w", seq, err)
		} else if err == nil {
			out = append(out, e)
		}
		if seq == last.Sequence {
			finish()
		}
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", subject, err)
	}
	defer cc.Stop()
	select {
	case <-done:
		return out, decodeErr
	case <-ctx.Done():
		return nil, fmt.Errorf("read %s: %w", subject, ctx.Err())
	}
}

// Follow replays the whole log into apply, oldest first, then keeps applying
// new events until ctx ends. caughtUp is closed once every event that was in
// the log when Follow started has been applied. Messages that do not decode
// are logged and skipped (Berth's own writers validate before appending).
func (l *Log) Follow(ctx context.Context, log *slog.Logger, apply func(events.Envelope)) (caughtUp <-chan struct{}, err error) {
	info, err := l.stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("follow: %w: %w", ErrUnavailable, err)
	}
	until := info.State.LastSeq
	ch := make(chan struct{})
	markCaughtUp := sync.OnceFunc(func() { close(ch) })
	if until == 0 {
		markCaughtUp()
	}
	cc, err := l.subscribe(ctx, events.StreamSubjects, func(seq uint64, e events.Envelope, err error) {
		if err != nil {
			log.Error("skipping undecodable log message", "seq", seq, "err", err)
		} else {
			apply(e)
		}
		if seq >= until {
			markCaughtUp()
		}
	})
	if err != nil {
		return nil, fmt.Errorf("follow: %w", err)
	}
	go func() {
		<-ctx.Done()
		cc.Stop()
	}()
	return ch, nil
}

// subscribe reads subjects from the start of the stream with an ordered
// consumer: no server-side state to leak, gaps repaired by the client. The
// handler runs on one goroutine, in stream order.
func (l *Log) subscribe(ctx context.Context, subjects []string, handle func(seq uint64, e events.Envelope, err error)) (jetstream.ConsumeContext, error) {
	cons, err := l.js.OrderedConsumer(ctx, events.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			return
		}
		e, err := events.Decode(m.Data())
		e.Sequence = md.Sequence.Stream
		handle(md.Sequence.Stream, e, err)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return cc, nil
}

// OpenWhenReady opens the log, retrying with backoff while NATS is not
// reachable, until ctx ends. Services start serving health endpoints first
// and report not-ready meanwhile.
func OpenWhenReady(ctx context.Context, nc *nats.Conn, o Options, log *slog.Logger) (*Log, error) {
	for wait := 200 * time.Millisecond; ; wait = min(wait*2, 5*time.Second) {
		octx, cancel := context.WithTimeout(ctx, 5*time.Second)
		l, err := Open(octx, nc, o)
		cancel()
		if err == nil {
			return l, nil
		}
		log.Warn("event log not reachable, retrying", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// Replay follows the log into a projection and returns once every event
// that was in the log at the start has been applied; the projection keeps
// following until ctx ends.
func (l *Log) Replay(ctx context.Context, log *slog.Logger, proj *events.Projection) error {
	caughtUp, err := l.Follow(ctx, log, func(e events.Envelope) {
		if _, err := proj.Apply(e); err != nil {
			log.Warn("log event rejected by the fold", "seq", e.Sequence, "id", e.ID, "type", e.Type, "err", err)
		}
	})
	if err != nil {
		return err
	}
	select {
	case <-caughtUp:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
