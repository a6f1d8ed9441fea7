package eventlog

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/berthdev/berth/pkg/events"
)

// allSubjects filters nothing out of the stream: the whole log.
const allSubjects = ">"

// ReadLog returns up to limit events of the whole log (every workspace,
// the catalog, user settings) from sequence from on, oldest first, and the
// sequence to continue from (0 when there is nothing more). Like ReadPage
// it leaves nothing behind on the server.
func (l *Log) ReadLog(ctx context.Context, from uint64, limit int) ([]events.Envelope, uint64, error) {
	if from == 0 {
		from = 1
	}
	if limit <= 0 {
		limit = readBatch
	}
	out, next, _, err := l.directGet(ctx, allSubjects, from, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("read the log from %d: %w", from, err)
	}
	return out, next, nil
}

// SequenceAt returns the sequence of the first message stored at or after
// t, or the sequence after the last one when none is.
func (l *Log) SequenceAt(ctx context.Context, t time.Time) (uint64, error) {
	req, err := json.Marshal(map[string]any{"start_time": t.UTC().Format(time.RFC3339Nano), "next_by_subj": allSubjects})
	if err != nil {
		return 0, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	m, err := l.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+events.Stream, req)
	if err != nil {
		return 0, fmt.Errorf("sequence at %s: %w: %w", t, ErrUnavailable, err)
	}
	switch status := m.Header.Get("Status"); status {
	case "":
		n, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("sequence at %s: bad Nats-Sequence %q", t, m.Header.Get("Nats-Sequence"))
		}
		return n, nil
	case "404":
		last, err := l.LastSequence(ctx)
		return last + 1, err
	default:
		return 0, fmt.Errorf("sequence at %s: %w: status %s %s", t, ErrUnavailable, status, m.Header.Get("Description"))
	}
}

// LastSequence is the sequence of the last message in the log (0: empty).
func (l *Log) LastSequence(ctx context.Context) (uint64, error) {
	info, err := l.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("last sequence: %w: %w", ErrUnavailable, err)
	}
	return info.State.LastSeq, nil
}
