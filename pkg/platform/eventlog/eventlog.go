// Package eventlog is the JetStream-backed audit log: the stream, appends
// with per-subject optimistic concurrency and de-duplication, reads of one
// subject's history, and following the whole log into a projection.
package eventlog

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/bus"
	"github.com/berthdev/berth/pkg/platform/telemetry"
)

// tracer makes the log's producer and consumer spans, through the
// process's current provider (telemetry.New sets it; looked up per span so
// a provider set later, as tests do, is used).
func tracer() trace.Tracer { return otel.Tracer("github.com/berthdev/berth/pkg/platform/eventlog") }

// ErrConflict is returned by Append when the subject moved past the expected
// sequence: someone else wrote first. Re-read and retry.
var ErrConflict = errors.New("conflict: the subject changed since it was read")

// ErrUnavailable wraps failures to reach JetStream.
var ErrUnavailable = errors.New("event log unavailable")

// Options configure the log. Replicas, DuplicateWindow and SessionTTL are
// the declarations' settings (see bus.Options), used unless ReadOnly.
type Options struct {
	Replicas        int
	DuplicateWindow time.Duration
	SessionTTL      time.Duration
	// Meter records append latency and outcomes; nil records nothing.
	Meter metric.Meter
	// ReadOnly looks the stream up instead of declaring the streams and
	// buckets: the API owns them; the other identities may not reshape them.
	ReadOnly bool
	// RequestTimeout bounds each request to the bus an append or a read
	// makes (an append's acknowledgement, a page of a read), however long
	// the caller's own deadline (default DefaultRequestTimeout).
	RequestTimeout time.Duration
}

// DefaultRequestTimeout is Options.RequestTimeout's default. A reply lost
// on its way (the stream's leader killed after it took the request) never
// comes: nats.go bounds a request only when its context has no deadline,
// and a consumer's handler has one of an hour, so an append of a
// provisioner's observation waited that hour holding its workspace, which
// the reconciler then could neither redrive nor expire (issue 24).
const DefaultRequestTimeout = 10 * time.Second

// Log is the audit log.
type Log struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	stream   jetstream.Stream
	appendMs metric.Float64Histogram
	// handled counts consumer deliveries by consumer and outcome (ok,
	// retry, dead_letter); redelivered the deliveries after the first.
	handled, redelivered metric.Int64Counter
	// panics counts handler panics (recovered and retried) by consumer.
	panics metric.Int64Counter
	// lag is each running consumer's backlog, read from the server when
	// metrics are collected.
	meter metric.Meter
	lag   metric.Int64ObservableGauge
	// legacy is the last sequence of each workspace that has events on its
	// kind-less subject (logs written before 2026-11-24). Nothing appends
	// there any more, so it is read once, at Open.
	legacy map[string]uint64
	// requestTimeout bounds each request (Options.RequestTimeout).
	requestTimeout time.Duration
}

// Open declares Berth's streams and buckets (unless ReadOnly) and returns
// the log.
func Open(ctx context.Context, nc *nats.Conn, o Options) (*Log, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	stream, err := openStream(ctx, js, o)
	if err != nil {
		return nil, err
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
	handled, err := meter.Int64Counter("berth.eventlog.consumer.handled",
		metric.WithDescription("Durable consumer deliveries by consumer and outcome (ok, retry, dead_letter)"))
	if err != nil {
		return nil, fmt.Errorf("handled counter: %w", err)
	}
	redelivered, err := meter.Int64Counter("berth.eventlog.consumer.redelivered",
		metric.WithDescription("Durable consumer attempts after the first (retries and redeliveries), by consumer"))
	if err != nil {
		return nil, fmt.Errorf("redelivered counter: %w", err)
	}
	panics, err := meter.Int64Counter("berth.eventlog.consumer.panics",
		metric.WithDescription("Handler panics, recovered and retried, by consumer"))
	if err != nil {
		return nil, fmt.Errorf("panics counter: %w", err)
	}
	lag, err := meter.Int64ObservableGauge("berth.eventlog.consumer.lag",
		metric.WithDescription("Messages a durable consumer has not settled, by consumer and state (pending: not yet delivered; unacked: delivered, not yet settled)"))
	if err != nil {
		return nil, fmt.Errorf("lag gauge: %w", err)
	}
	legacy, err := legacyLast(ctx, stream)
	if err != nil {
		return nil, err
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	return &Log{nc: nc, js: js, stream: stream, appendMs: appendMs, handled: handled, redelivered: redelivered, panics: panics,
		meter: meter, lag: lag, legacy: legacy, requestTimeout: o.RequestTimeout}, nil
}

// legacyLast finds the workspaces with events on the kind-less subject and
// the last sequence there. A log created since has none: one info request.
func legacyLast(ctx context.Context, stream jetstream.Stream) (map[string]uint64, error) {
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(events.WorkspaceSubjectPrefix+"*"))
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w: %w", events.Stream, ErrUnavailable, err)
	}
	out := map[string]uint64{}
	for subject := range info.State.Subjects {
		m, err := stream.GetLastMsgForSubject(ctx, subject)
		if err != nil {
			return nil, fmt.Errorf("last of %s: %w: %w", subject, ErrUnavailable, err)
		}
		out[events.WorkspaceIDFromSubject(subject)] = m.Sequence
	}
	return out, nil
}

// openStream declares every stream and bucket (bus.Declare) and looks the
// log up, or only looks it up for an identity that may not change it
// (ReadOnly: the API owns the declarations).
func openStream(ctx context.Context, js jetstream.JetStream, o Options) (jetstream.Stream, error) {
	if !o.ReadOnly {
		if err := bus.Declare(ctx, js, bus.Options{Replicas: o.Replicas, DuplicateWindow: o.DuplicateWindow, SessionTTL: o.SessionTTL}); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	stream, err := js.Stream(ctx, events.Stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w: %w", events.Stream, ErrUnavailable, err)
	}
	return stream, nil
}

// decode decodes a log message and checks that it belongs on its subject.
func decode(subject string, data []byte) (events.Envelope, error) {
	e, err := events.Decode(data)
	if err != nil {
		return e, err
	}
	return e, events.CheckSubject(subject, e)
}

// JetStream exposes the context for other JetStream resources (KV buckets).
func (l *Log) JetStream() jetstream.JetStream { return l.js }

func subjectOf(e events.Envelope) string {
	if events.Singleton(e.Subject) {
		return e.Subject
	}
	return events.WorkspaceSubject(e.Subject, e.Type)
}

// Append stores e if its subject's last sequence is still expected (0: the
// subject must be empty). The event id is the Nats-Msg-Id, so retrying an
// append that may have landed is safe. It returns the stored sequence.
func (l *Log) Append(ctx context.Context, e events.Envelope, expected uint64) (uint64, error) {
	if err := e.Validate(); err != nil {
		return 0, err
	}
	start := time.Now()
	outcome := "ok"
	msg := nats.NewMsg(subjectOf(e))
	ctx, span := tracer().Start(ctx, "append "+string(e.Type), trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(telemetry.MessagingAttributes(semconv.MessagingOperationTypeSend, msg.Subject, e.ID)...))
	defer func() {
		l.appendMs.Record(ctx, float64(time.Since(start).Microseconds())/1000, metric.WithAttributes(
			attribute.String("type", string(e.Type)), attribute.String("outcome", outcome)))
		if outcome != "ok" {
			span.SetStatus(codes.Error, outcome)
		}
		span.End()
	}()
	if e.TraceParent == "" {
		// Every event carries a trace: one written outside any request
		// (a reaper decision, a recorded crash) starts its own here.
		e.TraceParent, e.TraceState = telemetry.TraceContext(ctx)
	}
	body, err := json.Marshal(e)
	if err != nil {
		outcome = "error"
		return 0, fmt.Errorf("marshal event %s: %w", e.ID, err)
	}
	msg.Data = body
	msg.Header.Set("Content-Type", "application/cloudevents+json")
	telemetry.Inject(ctx, msg.Header) // the consumer's span continues the producer's
	expect := jetstream.WithExpectLastSequencePerSubject(expected)
	if !events.Singleton(e.Subject) {
		// One workspace's events are on one subject per kind; the check
		// covers them all. A workspace whose last event is on the old
		// kind-less subject has nothing on the new ones yet.
		if last, ok := l.legacy[e.Subject]; ok && last == expected {
			expected = 0
		}
		expect = jetstream.WithExpectLastSequenceForSubject(expected, events.WorkspaceSubjects(e.Subject))
	}
	// An append that timed out may still have landed: its retry carries
	// the same Nats-Msg-Id (deduplicated) or meets its own event as a
	// conflict, and plans again.
	pctx, cancel := context.WithTimeout(ctx, l.requestTimeout)
	defer cancel()
	ack, err := l.js.PublishMsg(pctx, msg,
		jetstream.WithMsgID(e.ID),
		jetstream.WithExpectStream(events.Stream),
		expect,
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

// Read returns every event of one subject (a workspace id,
// events.CatalogSubject, events.UsersSubject), oldest first.
func (l *Log) Read(ctx context.Context, subject string) ([]events.Envelope, error) {
	out, _, err := l.ReadAll(ctx, subject)
	return out, err
}

// ReadAll is Read plus the sequence of the subject's last message, kept or
// not: the version to append after. Messages that do not belong on the
// subject are left out of the events (the fold rejects them too), but a
// writer must still expect them, or its append conflicts forever.
func (l *Log) ReadAll(ctx context.Context, subject string) ([]events.Envelope, uint64, error) {
	var (
		out  []events.Envelope
		last uint64
	)
	for from := uint64(1); ; {
		page, next, seen, err := l.readPage(ctx, subject, from, readBatch)
		if err != nil {
			return nil, 0, err
		}
		out, last = append(out, page...), max(last, seen)
		if next == 0 {
			return out, last, nil
		}
		from = next
	}
}

// readBatch is how many messages one direct-get request asks for.
const readBatch = 256

// ReadPage returns up to limit events of one subject whose stream sequence
// is at least from, oldest first, and the sequence to continue from (0 when
// there is nothing more). It uses JetStream's batched direct get: a request
// and its replies, no consumer, so reads leave nothing behind on the server
// however many run at once.
func (l *Log) ReadPage(ctx context.Context, subject string, from uint64, limit int) ([]events.Envelope, uint64, error) {
	out, next, _, err := l.readPage(ctx, subject, from, limit)
	return out, next, err
}

// readPage is ReadPage plus the last sequence it saw, kept or not.
func (l *Log) readPage(ctx context.Context, subject string, from uint64, limit int) ([]events.Envelope, uint64, uint64, error) {
	if from == 0 {
		from = 1
	}
	if limit <= 0 {
		limit = readBatch
	}
	if events.Singleton(subject) {
		out, next, seen, err := l.directGet(ctx, subject, from, limit)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("read %s: %w", subject, err)
		}
		return out, next, seen, nil
	}
	out, next, seen, err := l.directGet(ctx, events.WorkspaceSubjects(subject), from, limit)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("read %s: %w", subject, err)
	}
	if _, ok := l.legacy[subject]; ok {
		old, oldNext, oldSeen, err := l.directGet(ctx, events.LegacyWorkspaceSubject(subject), from, limit)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("read %s: %w", subject, err)
		}
		out, next = mergePages(out, next, old, oldNext, limit)
		seen = max(seen, oldSeen)
		if next != 0 {
			seen = min(seen, next-1) // what lies past the page is read with the next one
		}
	}
	return out, next, seen, nil
}

// mergePages merges two pages read from the same sequence, each in stream
// order with its own continuation (0: that side has no more), into one of
// at most limit events and the sequence to continue from. Past where a side
// stopped reading, the other side's events cannot be returned yet: the
// first side may have some in between.
func mergePages(a []events.Envelope, aNext uint64, b []events.Envelope, bNext uint64, limit int) ([]events.Envelope, uint64) {
	var frontier uint64 // last sequence both sides have covered; 0: all
	for _, n := range []uint64{aNext, bNext} {
		if n != 0 && (frontier == 0 || n-1 < frontier) {
			frontier = n - 1
		}
	}
	all := append(slices.Clone(a), b...)
	slices.SortFunc(all, func(x, y events.Envelope) int { return cmp.Compare(x.Sequence, y.Sequence) })
	if frontier != 0 {
		all = slices.DeleteFunc(all, func(e events.Envelope) bool { return e.Sequence > frontier })
	}
	switch {
	case len(all) > limit:
		return all[:limit], all[limit].Sequence
	case frontier != 0:
		return all, frontier + 1
	}
	return all, 0
}

// directGet asks for up to batch messages of subject from seq on. The
// server answers with one message each, then an end-of-batch status that
// says how many more match.
func (l *Log) directGet(ctx context.Context, subject string, seq uint64, batch int) ([]events.Envelope, uint64, uint64, error) {
	req, err := json.Marshal(map[string]any{"seq": seq, "next_by_subj": subject, "batch": batch})
	if err != nil {
		return nil, 0, 0, err
	}
	inbox := l.nc.NewRespInbox()
	sub, err := l.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := l.nc.PublishRequest("$JS.API.DIRECT.GET."+events.Stream, inbox, req); err != nil {
		return nil, 0, 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	ctx, cancel := context.WithTimeout(ctx, l.requestTimeout)
	defer cancel()
	var (
		out  []events.Envelope
		seen uint64 // last sequence received, kept or not
	)
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		switch status := m.Header.Get("Status"); status {
		case "":
		case "404":
			return out, 0, seen, nil // nothing at or after seq
		case "204": // end of batch
			if m.Header.Get("Nats-Num-Pending") == "0" || seen == 0 {
				return out, 0, seen, nil
			}
			return out, seen + 1, seen, nil
		default:
			return nil, 0, 0, fmt.Errorf("%w: direct get: status %s %s", ErrUnavailable, status, m.Header.Get("Description"))
		}
		n, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("direct get: bad Nats-Sequence %q", m.Header.Get("Nats-Sequence"))
		}
		seen = n
		e, err := decode(m.Header.Get("Nats-Subject"), m.Data)
		if err != nil {
			// Not an event of this subject, or not an event at all (a
			// faulty or hostile writer): left out, so one bad message does
			// not make a history, the audit or an export unreadable
			// (ReadAll still counts it).
			continue
		}
		e.Sequence = n
		out = append(out, e)
	}
}

// Follow replays the whole log into apply, oldest first, then keeps applying
// new events until ctx ends. caughtUp is closed once every event that was in
// the log when Follow started has been applied. Messages that do not decode
// are logged and skipped (Berth's own writers validate before appending).
func (l *Log) Follow(ctx context.Context, log *slog.Logger, apply func(events.Envelope)) (caughtUp <-chan struct{}, err error) {
	return l.FollowTraced(ctx, log, func(_ context.Context, e events.Envelope) { apply(e) })
}

// FollowTraced is Follow with each event's trace: apply's context carries
// the trace context its producer sent (NATS headers, or the envelope's), so
// what apply starts joins that trace.
func (l *Log) FollowTraced(ctx context.Context, log *slog.Logger, apply func(context.Context, events.Envelope)) (caughtUp <-chan struct{}, err error) {
	return l.follow(ctx, func(m followed) {
		if m.err != nil {
			log.Error("skipping undecodable log message", "seq", m.seq, "subject", m.subject, "err", m.err)
			return
		}
		apply(telemetry.Extract(ctx, m.header, m.e.TraceParent, m.e.TraceState), m.e)
	})
}

// followed is one message of the log as follow reports it.
type followed struct {
	seq     uint64
	subject string
	header  nats.Header
	e       events.Envelope
	err     error // the message does not decode
}

// follow is Follow with every message reported, undecodable ones included.
func (l *Log) follow(ctx context.Context, handle func(followed)) (<-chan struct{}, error) {
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
	// nil: the whole stream, settings subjects included.
	cc, err := l.subscribe(ctx, nil, func(m followed) {
		handle(m)
		if m.seq >= until {
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
func (l *Log) subscribe(ctx context.Context, subjects []string, handle func(followed)) (jetstream.ConsumeContext, error) {
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
		e, err := decode(m.Subject(), m.Data())
		e.Sequence = md.Sequence.Stream
		handle(followed{seq: md.Sequence.Stream, subject: m.Subject(), header: m.Headers(), e: e, err: err})
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
// following until ctx ends. Every message, applied or not, advances the
// projection's watermark (see Projection.WaitFor), so a consumer handed
// message n can wait until the projection has seen it.
func (l *Log) Replay(ctx context.Context, log *slog.Logger, proj *events.Projection) error {
	caughtUp, err := l.follow(ctx, func(m followed) {
		if m.err != nil {
			log.Error("skipping undecodable log message", "seq", m.seq, "subject", m.subject, "err", m.err)
			proj.Skip(m.subject, m.seq, m.err)
		} else if _, err := proj.Apply(m.e); err != nil {
			log.Warn("log event rejected by the fold", "seq", m.e.Sequence, "id", m.e.ID, "type", m.e.Type, "err", err)
		}
		proj.Advance(m.seq)
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
