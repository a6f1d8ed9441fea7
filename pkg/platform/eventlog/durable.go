package eventlog

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthdev/berth/pkg/events"
)

// DeadLetterStream keeps messages that can never be handled, so they are
// inspected rather than redelivered forever.
const DeadLetterStream = "BERTH_DEADLETTER"

// DeadLetterReasonHeader carries why a message was dead-lettered.
const DeadLetterReasonHeader = "Berth-Dead-Letter-Reason"

// Handler handles one event. attempt counts deliveries from 1; last is true
// on the final delivery, when the handler should record a failure instead of
// asking for another retry. A returned error redelivers the message after a
// backoff, or dead-letters it after the last attempt.
type Handler func(ctx context.Context, e events.Envelope, attempt int, last bool) error

// DurableOptions configure a durable consumer.
type DurableOptions struct {
	Name        string   // durable name, shared by every replica of a service
	Subjects    []string // filter; default every workspace subject
	MaxDeliver  int      // deliveries before dead-lettering (default 6)
	AckWait     time.Duration
	Concurrency int // messages handled at once (default 8); one at a time per workspace
	Backoff     func(attempt int) time.Duration
}

// Consume runs a durable consumer until ctx ends: at-least-once delivery,
// handled concurrently across workspaces and one at a time within one (handlers act on the latest state, so order within a workspace does not matter).
func (l *Log) Consume(ctx context.Context, log *slog.Logger, o DurableOptions, h Handler) error {
	if o.MaxDeliver == 0 {
		o.MaxDeliver = 6
	}
	if o.AckWait == 0 {
		o.AckWait = 2 * time.Minute
	}
	if o.Concurrency == 0 {
		o.Concurrency = 8
	}
	if len(o.Subjects) == 0 {
		o.Subjects = []string{events.WorkspaceSubjectPrefix + "*"}
	}
	if o.Backoff == nil {
		o.Backoff = func(attempt int) time.Duration {
			return min(time.Duration(attempt*attempt)*time.Second, 30*time.Second)
		}
	}
	if err := l.EnsureDeadLetters(ctx); err != nil {
		return err
	}
	cons, err := l.js.CreateOrUpdateConsumer(ctx, events.Stream, jetstream.ConsumerConfig{
		Durable:        o.Name,
		FilterSubjects: o.Subjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        o.AckWait,
		MaxDeliver:     o.MaxDeliver,
		MaxAckPending:  o.Concurrency * 4,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("consumer %s: %w: %w", o.Name, ErrUnavailable, err)
	}
	var (
		wg    sync.WaitGroup
		sem   = make(chan struct{}, o.Concurrency)
		locks keyedMutex
	)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			unlock := locks.lock(m.Subject())
			defer unlock()
			l.handle(ctx, log, o, h, m)
		}()
	})
	if err != nil {
		return fmt.Errorf("consume %s: %w: %w", o.Name, ErrUnavailable, err)
	}
	<-ctx.Done()
	cc.Stop()
	wg.Wait()
	return nil
}

func (l *Log) handle(ctx context.Context, log *slog.Logger, o DurableOptions, h Handler, m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		_ = m.Term()
		return
	}
	attempt := int(md.NumDelivered)
	e, err := events.Decode(m.Data())
	if err != nil {
		l.deadLetter(ctx, log, o.Name, m, "undecodable: "+err.Error())
		return
	}
	e.Sequence = md.Sequence.Stream
	last := attempt >= o.MaxDeliver
	err = safeCall(func() error { return h(ctx, e, attempt, last) })
	switch {
	case err == nil:
		_ = m.Ack()
	case ctx.Err() != nil:
		_ = m.Nak() // shutting down: another replica or the next start takes it
	case last:
		l.deadLetter(ctx, log, o.Name, m, fmt.Sprintf("failed %d times: %v", attempt, err))
	default:
		delay := o.Backoff(attempt)
		log.Warn("handler failed, will retry", "consumer", o.Name, "subject", m.Subject(), "seq", e.Sequence, "attempt", attempt, "retry_in", delay, "err", err)
		_ = m.NakWithDelay(delay)
	}
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
	if err := l.DeadLetter(ctx, consumer, m.Subject(), m.Data(), reason); err != nil {
		log.Error("dead-letter publish failed; message will be redelivered", "subject", m.Subject(), "err", err)
		_ = m.Nak()
		return
	}
	log.Error("message dead-lettered", "consumer", consumer, "subject", m.Subject(), "reason", reason)
	_ = m.Term()
}

// EnsureDeadLetters creates the dead-letter stream if it is missing.
func (l *Log) EnsureDeadLetters(ctx context.Context) error {
	if _, err := l.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: DeadLetterStream, Subjects: []string{events.DeadLetterSubjectPrefix + ">"}, Storage: jetstream.FileStorage,
	}); err != nil {
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
	dl.Header.Set("Berth-Original-Subject", subject)
	_, err := l.js.PublishMsg(ctx, dl)
	return err
}

// keyedMutex serialises work per key (workspace subject).
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedEntry{}
	}
	e := k.locks[key]
	if e == nil {
		e = &keyedEntry{}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
