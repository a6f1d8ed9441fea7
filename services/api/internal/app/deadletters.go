package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// DeadLetters are the messages consumers could never handle, as the use
// cases need them.
type DeadLetters interface {
	// ReadDeadLetters pages through the dead letters, oldest first, after a
	// dead-letter sequence; it returns the after of the next page (0: none).
	ReadDeadLetters(ctx context.Context, after uint64, limit int) ([]DeadLetter, uint64, error)
	// ReadDeadLetter returns one dead letter, or ErrDeadLetterNotFound.
	ReadDeadLetter(ctx context.Context, seq uint64) (DeadLetter, error)
	// Redrive publishes dead letter seq's original message again for its
	// consumer (berth.redrive.<consumer>) and returns the sequence the
	// request was stored at, or ErrDeadLetterNotFound.
	Redrive(ctx context.Context, seq uint64) (uint64, error)
}

// ErrDeadLetterNotFound is returned by DeadLetters for a sequence that
// holds no dead letter.
var ErrDeadLetterNotFound = errors.New("no such dead letter")

// DeadLetter is one stored dead letter.
type DeadLetter struct {
	Sequence        uint64
	Time            time.Time
	Consumer        string // the consumer that gave up (provisioner, intake, ...)
	Reason          string
	OriginalSubject string // where the message was published
	// Event is the message as it was, when it is JSON; Raw holds it
	// otherwise (at most 4 KiB of it).
	Event json.RawMessage
	Raw   string
}

// DeadLetterPage is one page of dead letters; Next is the after of the
// following page (0: none).
type DeadLetterPage struct {
	Entries []DeadLetter
	Next    uint64
}

// Redriven says which dead letter was published again, for whom, and
// where the redrive request is stored.
type Redriven struct {
	Sequence        uint64
	Consumer        string
	RedriveSequence uint64
}

// redrivable are the consumers that read their redrive subject; the dead
// letters of others cannot be retried.
var redrivable = map[string]bool{"provisioner": true}

// intakeConsumer names the dead letters of the API's own intake.
const intakeConsumer = "intake"

// DeadLetters lists what consumers could never handle, with the reason and
// where it was published (admins).
func (s *Service) DeadLetters(ctx context.Context, c Caller, after uint64, limit int) (DeadLetterPage, error) {
	if !c.Admin {
		return DeadLetterPage{}, forbidden("only admins read dead letters")
	}
	ctx, cancel := context.WithTimeout(ctx, s.o.AppendTimeout)
	defer cancel()
	entries, next, err := s.log.ReadDeadLetters(ctx, after, limit)
	if err != nil {
		return DeadLetterPage{}, unavailable(err)
	}
	if entries == nil {
		entries = []DeadLetter{}
	}
	return DeadLetterPage{Entries: entries, Next: next}, nil
}

// DeadLetter returns one dead letter (admins).
func (s *Service) DeadLetter(ctx context.Context, c Caller, seq uint64) (DeadLetter, error) {
	if !c.Admin {
		return DeadLetter{}, forbidden("only admins read dead letters")
	}
	ctx, cancel := context.WithTimeout(ctx, s.o.AppendTimeout)
	defer cancel()
	d, err := s.log.ReadDeadLetter(ctx, seq)
	if err != nil {
		return DeadLetter{}, deadLetterError(seq, err)
	}
	return d, nil
}

// RetryDeadLetter hands a dead letter's message back to the consumer that
// gave up on it (admins): the consumer checks it again like any message.
// Only consumers that read a redrive subject can be asked.
func (s *Service) RetryDeadLetter(ctx context.Context, c Caller, seq uint64) (Redriven, error) {
	if !c.Admin {
		return Redriven{}, forbidden("only admins retry dead letters")
	}
	ctx, cancel := context.WithTimeout(ctx, s.o.AppendTimeout)
	defer cancel()
	d, err := s.log.ReadDeadLetter(ctx, seq)
	if err != nil {
		return Redriven{}, deadLetterError(seq, err)
	}
	if err := retryable(d); err != nil {
		return Redriven{}, err
	}
	at, err := s.log.Redrive(ctx, seq)
	if err != nil {
		return Redriven{}, deadLetterError(seq, err)
	}
	return Redriven{Sequence: seq, Consumer: d.Consumer, RedriveSequence: at}, nil
}

// retryable refuses dead letters no consumer would pick up again.
func retryable(d DeadLetter) error {
	var msg string
	switch {
	case d.Consumer == intakeConsumer:
		msg = fmt.Sprintf("dead letter %d is a message the intake refused (an activity report or a system's command); it came over core NATS and was answered, so it cannot be retried here: the sending system sends it again, corrected", d.Sequence)
	case !redrivable[d.Consumer]:
		msg = fmt.Sprintf("dead letter %d of consumer %q cannot be retried: only the provisioner's dead letters can", d.Sequence, d.Consumer)
	case d.OriginalSubject == "":
		msg = fmt.Sprintf("dead letter %d does not say where its message was published, so its consumer cannot check it again", d.Sequence)
	default:
		return nil
	}
	return &Error{Kind: KindConflict, Code: CodeNotRetryable, Message: msg}
}

func deadLetterError(seq uint64, err error) error {
	if errors.Is(err, ErrDeadLetterNotFound) {
		return &Error{Kind: KindNotFound, Code: CodeDeadLetterNotFound, Message: fmt.Sprintf("no dead letter %d", seq), Err: err}
	}
	return unavailable(err)
}
