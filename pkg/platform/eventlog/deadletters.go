package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthdev/berth/pkg/events"
)

// ErrDeadLetterNotFound is returned for a sequence that holds no dead
// letter: never written, removed by the stream's limits, or a redrive
// request (the same stream keeps those).
var ErrDeadLetterNotFound = errors.New("no such dead letter")

// ReadDeadLetter returns the dead letter stored at seq, or
// ErrDeadLetterNotFound. Nothing is created on the server.
func (l *Log) ReadDeadLetter(ctx context.Context, seq uint64) (DeadLetterEntry, error) {
	m, err := l.deadLetterMsg(ctx, seq)
	if err != nil {
		return DeadLetterEntry{}, err
	}
	return deadLetterEntry(m), nil
}

// Redrive asks the consumer that gave up on dead letter seq to handle its
// message again: the original bytes go to berth.redrive.<consumer> with
// Berth-Original-Subject and Berth-Dead-Letter-Sequence, stored in the
// dead-letter stream (the publish fails unless that stream captures it).
// It returns the stream sequence of the redrive request. Whether a
// consumer reads its redrive subject is the caller's to know.
func (l *Log) Redrive(ctx context.Context, seq uint64) (uint64, error) {
	m, err := l.deadLetterMsg(ctx, seq)
	if err != nil {
		return 0, err
	}
	consumer := strings.TrimPrefix(m.Subject, events.DeadLetterSubjectPrefix)
	msg := nats.NewMsg(events.RedriveSubjectPrefix + consumer)
	msg.Data = m.Data
	msg.Header.Set(OriginalSubjectHeader, m.Header.Get(OriginalSubjectHeader))
	msg.Header.Set(events.DeadLetterSequenceHeader, strconv.FormatUint(seq, 10))
	ack, err := l.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(DeadLetterStream))
	if err != nil {
		return 0, fmt.Errorf("redrive dead letter %d to %s: %w: %w", seq, msg.Subject, ErrUnavailable, err)
	}
	return ack.Sequence, nil
}

// deadLetterMsg reads the stored message at seq if it is a dead letter.
func (l *Log) deadLetterMsg(ctx context.Context, seq uint64) (*jetstream.RawStreamMsg, error) {
	if seq == 0 {
		return nil, fmt.Errorf("dead letter 0: %w", ErrDeadLetterNotFound) // sequences start at 1
	}
	stream, err := l.js.Stream(ctx, DeadLetterStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("dead letter %d: %w", seq, ErrDeadLetterNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w: %w", ErrUnavailable, err)
	}
	m, err := stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("dead letter %d: %w", seq, ErrDeadLetterNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("dead letter %d: %w: %w", seq, ErrUnavailable, err)
	}
	if !strings.HasPrefix(m.Subject, events.DeadLetterSubjectPrefix) {
		return nil, fmt.Errorf("dead letter %d is %s: %w", seq, m.Subject, ErrDeadLetterNotFound)
	}
	return m, nil
}

// deadLetterEntry is a stored dead letter as operators see it: JSON shown
// as it is, anything else as (at most 4 KiB of) text.
func deadLetterEntry(m *jetstream.RawStreamMsg) DeadLetterEntry {
	e := DeadLetterEntry{Sequence: m.Sequence, Time: m.Time, Consumer: strings.TrimPrefix(m.Subject, events.DeadLetterSubjectPrefix),
		Reason: m.Header.Get(DeadLetterReasonHeader), OriginalSubject: m.Header.Get(OriginalSubjectHeader)}
	if json.Valid(m.Data) {
		e.Event = m.Data
	} else {
		e.Raw = string(m.Data[:min(len(m.Data), 4096)])
	}
	return e
}
