// Package adapters fits the platform's bus clients to the ports the use
// cases declare (app.Log with app.DeadLetters, app.Engine): the same calls,
// with the clients' error values and types translated into app's, so app
// imports no adapter and an adapter's change cannot silently change an
// HTTP status.
package adapters

import (
	"context"
	"errors"
	"time"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/enginestatus"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/services/api/internal/app"
)

// Log is the event log as app.Log. Reads pass through: their errors all
// mean "unreachable" to the use cases.
type Log struct {
	l        *eventlog.Log
	appender eventlog.Appender // lost races reported as app.ErrConflict
}

var _ app.Log = (*Log)(nil)

// NewLog adapts l.
func NewLog(l *eventlog.Log) *Log { return &Log{l: l, appender: l.ConflictAs(app.ErrConflict)} }

// Append writes e after expected; a conflict is app.ErrConflict.
func (a *Log) Append(ctx context.Context, e events.Envelope, expected uint64) (uint64, error) {
	return a.appender.Append(ctx, e, expected)
}

// Read returns a subject's events.
func (a *Log) Read(ctx context.Context, subject string) ([]events.Envelope, error) {
	return a.l.Read(ctx, subject)
}

// ReadAll returns a subject's events and the sequence of its last message.
func (a *Log) ReadAll(ctx context.Context, subject string) ([]events.Envelope, uint64, error) {
	return a.l.ReadAll(ctx, subject)
}

// ReadPage returns one page of a subject's events.
func (a *Log) ReadPage(ctx context.Context, subject string, from uint64, limit int) ([]events.Envelope, uint64, error) {
	return a.l.ReadPage(ctx, subject, from, limit)
}

// ReadLog returns one page of the whole log.
func (a *Log) ReadLog(ctx context.Context, from uint64, limit int) ([]events.Envelope, uint64, error) {
	return a.l.ReadLog(ctx, from, limit)
}

// SequenceAt is the first sequence stored at or after t.
func (a *Log) SequenceAt(ctx context.Context, t time.Time) (uint64, error) {
	return a.l.SequenceAt(ctx, t)
}

// LastSequence is the log's last sequence.
func (a *Log) LastSequence(ctx context.Context) (uint64, error) { return a.l.LastSequence(ctx) }

// ReadDeadLetters returns one page of dead letters.
func (a *Log) ReadDeadLetters(ctx context.Context, after uint64, limit int) ([]app.DeadLetter, uint64, error) {
	entries, next, err := a.l.ReadDeadLetters(ctx, after, limit)
	if err != nil {
		return nil, 0, translate(err)
	}
	out := make([]app.DeadLetter, 0, len(entries))
	for _, e := range entries {
		out = append(out, deadLetter(e))
	}
	return out, next, nil
}

// ReadDeadLetter returns one dead letter; none is app.ErrDeadLetterNotFound.
func (a *Log) ReadDeadLetter(ctx context.Context, seq uint64) (app.DeadLetter, error) {
	e, err := a.l.ReadDeadLetter(ctx, seq)
	if err != nil {
		return app.DeadLetter{}, translate(err)
	}
	return deadLetter(e), nil
}

// Redrive publishes a dead letter's message again for its consumer.
func (a *Log) Redrive(ctx context.Context, seq uint64) (uint64, error) {
	at, err := a.l.Redrive(ctx, seq)
	return at, translate(err)
}

func deadLetter(e eventlog.DeadLetterEntry) app.DeadLetter {
	return app.DeadLetter{Sequence: e.Sequence, Time: e.Time, Consumer: e.Consumer, Reason: e.Reason,
		OriginalSubject: e.OriginalSubject, Event: e.Event, Raw: e.Raw}
}

// Engine is the provisioners' status board as app.Engine.
type Engine struct{ b *enginestatus.Board }

var _ app.Engine = Engine{}

// NewEngine adapts b.
func NewEngine(b *enginestatus.Board) Engine { return Engine{b: b} }

// Check reports whether some provisioner reaches its engine; none is
// app.ErrEngineUnavailable.
func (e Engine) Check(ctx context.Context) error { return translate(e.b.Check(ctx)) }

// ports pairs each adapter error the use cases branch on with app's
// (append conflicts are mapped by eventlog.ConflictAs).
var ports = []struct{ adapter, port error }{
	{eventlog.ErrDeadLetterNotFound, app.ErrDeadLetterNotFound},
	{enginestatus.ErrEngineUnavailable, app.ErrEngineUnavailable},
}

// translate adds the app error an adapter error means; other errors pass
// unchanged (app treats them as "unreachable").
func translate(err error) error {
	if err == nil {
		return nil
	}
	for _, p := range ports {
		if errors.Is(err, p.adapter) {
			return &translated{port: p.port, err: err}
		}
	}
	return err
}

// translated is an adapter error that also is the app error it means. Its
// message stays the adapter's (with its context: subject, sequence).
type translated struct{ port, err error }

func (t *translated) Error() string   { return t.err.Error() }
func (t *translated) Unwrap() []error { return []error{t.port, t.err} }
