package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

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

// Handler handles one event. attempt counts deliveries from 1; last is true
// on the final delivery, when the handler should record a failure instead of
// asking for another retry. A returned error redelivers the message after a
// backoff, or dead-letters it after the last attempt.
type Handler func(ctx context.Context, e events.Envelope, attempt int, last bool) error

// DurableOptions configure a durable consumer.
type DurableOptions struct {
	Name       string   // durable name, shared by every replica of a service
	Subjects   []string // filter; default every workspace subject
	MaxDeliver int      // deliveries before dead-lettering (default 6)
	// AckWait is how long a message may go without news from the instance
	// holding it before the server hands it to another (default 3s). Every
	// message this instance holds, handled or queued, gets an in-progress
	// signal every AckWait/3, so long work is never redelivered while its
	// holder lives, and a dead holder's work moves on within AckWait.
	AckWait     time.Duration
	Concurrency int // messages handled at once (default 8); one at a time per workspace
	Backoff     func(attempt int) time.Duration
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
	if o.Backoff == nil {
		o.Backoff = func(attempt int) time.Duration {
			return min(time.Duration(attempt*attempt)*time.Second, 30*time.Second)
		}
	}
}

// maxAckPending bounds what the server hands one instance: the workers'
// share plus as many queued, so a dead instance strands at most this many
// messages (for one AckWait) and a live one never holds messages it cannot
// keep alive.
func (o DurableOptions) maxAckPending() int { return o.Concurrency * 2 }

// ErrConsumerClosed is returned by Consume when the server side of the
// consumer went away (deleted, or the stream was recreated); the caller's
// supervisor starts it again.
var ErrConsumerClosed = errors.New("consumer closed by the server")

// Consume runs a durable consumer until ctx ends: at-least-once delivery,
// handled concurrently across workspaces and one at a time within one
// (handlers act on the latest state, so order within a workspace does not
// matter). It returns nil when ctx ends and an error when the consumer
// cannot run; it never exits on its own otherwise.
func (l *Log) Consume(ctx context.Context, log *slog.Logger, o DurableOptions, h Handler) error {
	o.defaults()
	if err := l.EnsureDeadLetters(ctx); err != nil {
		return err
	}
	cons, err := l.js.CreateOrUpdateConsumer(ctx, events.Stream, jetstream.ConsumerConfig{
		Durable:        o.Name,
		FilterSubjects: o.Subjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        o.AckWait,
		MaxDeliver:     o.MaxDeliver,
		MaxAckPending:  o.maxAckPending(),
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("consumer %s: %w: %w", o.Name, ErrUnavailable, err)
	}
	// The queue holds a job per message the server may have given us, plus
	// room for redelivered copies, so the delivery callback never blocks.
	var (
		queue = make(chan job, 2*o.maxAckPending())
		held  heldSet
		subs  subjects
		wg    sync.WaitGroup
	)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		held.add(m)
		j := job{m: m}
		if e, err := decode(m.Subject(), m.Data()); err == nil {
			// Undecodable messages go alone, to be dead-lettered: they must
			// not stand in for a real request of their subject.
			handOff, superseded, covered := subs.join(e.Subject, m)
			if superseded != nil {
				held.remove(superseded)
				if covered {
					_ = superseded.Ack() // a newer message of its subject waits in its place
				}
			}
			if !handOff {
				return // behind the one being handled: settled after it (see work)
			}
			j.subject = e.Subject
		}
		select {
		case queue <- j:
		default:
			subs.leave(j.subject)
			held.remove(m)
			_ = m.Nak() // cannot happen within MaxAckPending; never block delivery
		}
	}, jetstream.PullMaxMessages(o.maxAckPending()), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if ctx.Err() == nil {
			log.Warn("consumer delivery problem; nats.go keeps retrying", "consumer", o.Name, "err", err)
		}
	}))
	if err != nil {
		return fmt.Errorf("consume %s: %w: %w", o.Name, ErrUnavailable, err)
	}
	// Workers start after Consume and stop only on ctx: the WaitGroup is
	// complete before Wait, unlike counting per-message goroutines from the
	// delivery callback (which raced with Wait on shutdown).
	wctx, stopWorkers := context.WithCancel(ctx)
	defer stopWorkers()
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-wctx.Done():
					return
				case j := <-queue:
					l.work(wctx, log, o, h, j, &subs, &held)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		held.keepAlive(wctx, o.AckWait/3)
	}()
	var closed error
	select {
	case <-ctx.Done():
	case <-cc.Closed():
		closed = fmt.Errorf("consume %s: %w", o.Name, ErrConsumerClosed)
	}
	cc.Stop()
	select { // Stop is asynchronous: let a delivery in flight land in held first
	case <-cc.Closed():
	case <-time.After(5 * time.Second):
	}
	stopWorkers()
	wg.Wait()
	// What is still queued goes back at once, for another replica or the
	// next start, instead of waiting out its ack wait.
	for _, m := range held.drain() {
		_ = m.Nak()
	}
	return closed
}

// heldSet is every message this instance holds and has not settled.
type heldSet struct {
	mu   sync.Mutex
	msgs map[jetstream.Msg]struct{}
}

func (s *heldSet) add(m jetstream.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.msgs == nil {
		s.msgs = map[jetstream.Msg]struct{}{}
	}
	s.msgs[m] = struct{}{}
}

func (s *heldSet) remove(m jetstream.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.msgs, m)
}

func (s *heldSet) drain() []jetstream.Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]jetstream.Msg, 0, len(s.msgs))
	for m := range s.msgs {
		out = append(out, m)
	}
	s.msgs = nil
	return out
}

// keepAlive tells the server, every interval, that each held message is
// still being worked on.
func (s *heldSet) keepAlive(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		msgs := make([]jetstream.Msg, 0, len(s.msgs))
		for m := range s.msgs {
			msgs = append(msgs, m)
		}
		s.mu.Unlock()
		for _, m := range msgs {
			_ = m.InProgress()
		}
	}
}

// job is one message for a worker, with the subject (workspace) it holds
// (none: a message that does not decode, handled alone).
type job struct {
	subject string
	m       jetstream.Msg
}

// work handles a job's message, then the message that arrived for its
// subject meanwhile, until none is left. Messages that arrive while their
// subject is being handled wait without taking a worker, and only the
// newest waits (join acks the older: handlers act on the latest state, so
// handling the newest covers them). Blocking a worker per message let two
// messages of one slow start hold two of the workers.
func (l *Log) work(ctx context.Context, log *slog.Logger, o DurableOptions, h Handler, j job, subs *subjects, held *heldSet) {
	for m := j.m; m != nil; m = subs.next(j.subject) {
		l.handle(ctx, log, o, h, m)
		held.remove(m)
		if j.subject == "" {
			return
		}
		if ctx.Err() != nil {
			subs.leave(j.subject) // what waits is nak'ed with the rest of held
			return
		}
	}
}

// subjects tracks which subjects a worker is handling and the newest
// message that arrived for each meanwhile. Only one waits per subject: it
// holds one slot of the ack window whatever the burst, so a busy workspace
// cannot crowd the others out of the window.
type subjects struct {
	mu      sync.Mutex
	waiting map[string]jetstream.Msg // present: being handled; the value waits (nil: none)
}

// join reports whether m's subject was idle (the caller hands m to a
// worker); otherwise m waits for the worker on its subject. The message
// that no longer waits is returned as superseded: covered (ack it) when a
// newer one took its place, not covered (just forget it) when it is a
// redelivered copy of the one waiting, whose sequence an ack would settle.
func (s *subjects) join(subject string, m jetstream.Msg) (handOff bool, superseded jetstream.Msg, covered bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiting == nil {
		s.waiting = map[string]jetstream.Msg{}
	}
	w, busy := s.waiting[subject]
	switch {
	case !busy:
		s.waiting[subject] = nil
		return true, nil, false
	case w == nil:
		s.waiting[subject] = m
		return false, nil, false
	}
	switch ms, ws := streamSeq(m), streamSeq(w); {
	case ms == ws:
		return false, m, false
	case ms > ws:
		s.waiting[subject] = m
		return false, w, true
	}
	return false, m, true
}

func streamSeq(m jetstream.Msg) uint64 {
	md, err := m.Metadata()
	if err != nil {
		return 0
	}
	return md.Sequence.Stream
}

// next takes what waits for subject, or marks it idle if nothing does.
func (s *subjects) next(subject string) jetstream.Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.waiting[subject]
	if w == nil {
		delete(s.waiting, subject)
		return nil
	}
	s.waiting[subject] = nil
	return w
}

func (s *subjects) leave(subject string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.waiting, subject)
}

func (l *Log) handle(ctx context.Context, log *slog.Logger, o DurableOptions, h Handler, m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		_ = m.Term()
		return
	}
	attempt := int(md.NumDelivered)
	if attempt > 1 {
		l.redelivered.Add(ctx, 1, metric.WithAttributes(attribute.String("consumer", o.Name)))
	}
	e, err := decode(m.Subject(), m.Data())
	if err != nil {
		l.deadLetter(ctx, log, o.Name, m, "undecodable: "+err.Error())
		return
	}
	e.Sequence = md.Sequence.Stream
	last := attempt >= o.MaxDeliver
	err = safeCall(func() error { return h(ctx, e, attempt, last) })
	switch {
	case err == nil:
		l.count(ctx, o.Name, "ok")
		_ = m.Ack()
	case ctx.Err() != nil:
		_ = m.Nak() // shutting down: another replica or the next start takes it
	case last:
		l.deadLetter(ctx, log, o.Name, m, fmt.Sprintf("failed %d times: %v", attempt, err))
	default:
		l.count(ctx, o.Name, "retry")
		delay := o.Backoff(attempt)
		log.Warn("handler failed, will retry", "consumer", o.Name, "subject", m.Subject(), "seq", e.Sequence, "attempt", attempt, "retry_in", delay, "err", err)
		_ = m.NakWithDelay(delay)
	}
}

// count records one handled delivery of consumer with its outcome.
func (l *Log) count(ctx context.Context, consumer, outcome string) {
	l.handled.Add(ctx, 1, metric.WithAttributes(attribute.String("consumer", consumer), attribute.String("outcome", outcome)))
}

// safeCall turns a handler panic into an error, so one bad message cannot
// take the service down.
func safeCall(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	return f()
}

func (l *Log) deadLetter(ctx context.Context, log *slog.Logger, consumer string, m jetstream.Msg, reason string) {
	l.count(ctx, consumer, "dead_letter")
	if err := l.DeadLetter(ctx, consumer, m.Subject(), m.Data(), reason); err != nil {
		log.Error("dead-letter publish failed; message will be redelivered", "subject", m.Subject(), "err", err)
		_ = m.Nak()
		return
	}
	log.Error("message dead-lettered", "consumer", consumer, "subject", m.Subject(), "reason", reason)
	_ = m.Term()
}

// EnsureDeadLetters creates the dead-letter stream if it is missing. It
// looks first: only the API's identity may create streams.
func (l *Log) EnsureDeadLetters(ctx context.Context) error {
	if _, err := l.js.Stream(ctx, DeadLetterStream); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("dead-letter stream: %w: %w", ErrUnavailable, err)
	}
	_, err := l.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: DeadLetterStream, Subjects: []string{events.DeadLetterSubjectPrefix + ">"}, Storage: jetstream.FileStorage,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("dead-letter stream: %w: %w", ErrUnavailable, err)
	}
	return nil
}

// DeadLetter stores a message that can never be handled on
// berth.deadletter.<consumer>, with why and where it came from.
func (l *Log) DeadLetter(ctx context.Context, consumer, subject string, data []byte, reason string) error {
	dl := nats.NewMsg(events.DeadLetterSubjectPrefix + consumer)
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
		e := DeadLetterEntry{Sequence: m.Sequence, Time: m.Time, Consumer: strings.TrimPrefix(m.Subject, events.DeadLetterSubjectPrefix),
			Reason: m.Header.Get(DeadLetterReasonHeader), OriginalSubject: m.Header.Get(OriginalSubjectHeader)}
		if json.Valid(m.Data) {
			e.Event = m.Data
		} else {
			e.Raw = string(m.Data[:min(len(m.Data), 4096)])
		}
		out = append(out, e)
	}
	if seq > last {
		return out, 0, nil
	}
	return out, seq - 1, nil
}
