package eventlog

import (
	"context"
	"errors"
	"fmt"

	"github.com/berthdev/berth/pkg/events"
)

// Appender is the log as a use case that declares its own conflict error
// sees it: a lost race matches that error (and still ErrConflict).
type Appender struct {
	log      *Log
	conflict error
}

// ConflictAs returns l appending with lost races reported as conflict too,
// so a service's use cases need not import this package's errors.
func (l *Log) ConflictAs(conflict error) Appender { return Appender{log: l, conflict: conflict} }

// Append is Log.Append with the conflict mapped.
func (a Appender) Append(ctx context.Context, e events.Envelope, expected uint64) (uint64, error) {
	seq, err := a.log.Append(ctx, e, expected)
	if errors.Is(err, ErrConflict) {
		return seq, fmt.Errorf("%w: %w", a.conflict, err)
	}
	return seq, err
}
