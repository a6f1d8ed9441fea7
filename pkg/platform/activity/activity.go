// Package activity is the last-activity record of every workspace: the API
// writes it (requests Traefik lets through, owner API calls, heartbeats,
// the intake subject) and the reaper reads it. It is cheap on the hot path:
// an in-memory last-seen per workspace, flushed to a KV bucket at most once
// per interval per workspace, never an event in the audit log.
package activity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/bus"
)

// Tracker throttles activity writes.
type Tracker struct {
	kv       jetstream.KeyValue
	every    time.Duration
	log      *slog.Logger
	mu       sync.Mutex
	lastSent map[string]time.Time
}

// Open creates the activity bucket if needed.
func Open(ctx context.Context, js jetstream.JetStream, every time.Duration, log *slog.Logger) (*Tracker, error) {
	kv, err := bus.Bucket(ctx, js, events.ActivityBucket)
	if err != nil {
		return nil, fmt.Errorf("open kv %s: %w", events.ActivityBucket, err)
	}
	return &Tracker{kv: kv, every: every, log: log, lastSent: map[string]time.Time{}}, nil
}

// Touch records activity on workspace id at now; it writes to the bucket
// only if the last write for id is older than the interval.
func (t *Tracker) Touch(id string, now time.Time) {
	t.mu.Lock()
	if now.Sub(t.lastSent[id]) < t.every {
		t.mu.Unlock()
		return
	}
	t.lastSent[id] = now
	t.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := t.Record(ctx, id, now); err != nil {
			t.log.Warn("activity not recorded", "workspace", id, "err", err)
			t.mu.Lock()
			delete(t.lastSent, id) // try again on the next request
			t.mu.Unlock()
		}
	}()
}

// Record writes activity on workspace id at time at, unthrottled, unless
// a later time is already recorded (several writers race; the latest wins).
func (t *Tracker) Record(ctx context.Context, id string, at time.Time) error {
	for range 5 {
		e, err := t.kv.Get(ctx, id)
		val := []byte(at.UTC().Format(events.ActivityFormat))
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = t.kv.Create(ctx, id, val)
		case err != nil:
			return fmt.Errorf("read activity of %s: %w", id, err)
		default:
			if prev, perr := time.Parse(events.ActivityFormat, string(e.Value())); perr == nil && !prev.Before(at) {
				return nil
			}
			_, err = t.kv.Update(ctx, id, val, e.Revision())
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !isWrongSequence(err) {
			return fmt.Errorf("record activity of %s: %w", id, err)
		}
	}
	return fmt.Errorf("record activity of %s: too many concurrent writers", id)
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// LastSeen returns the recorded last activity of id.
func (t *Tracker) LastSeen(ctx context.Context, id string) (time.Time, bool, error) {
	e, err := t.kv.Get(ctx, id)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return time.Time{}, false, nil
		}
		return time.Time{}, false, err
	}
	ts, err := time.Parse(events.ActivityFormat, string(e.Value()))
	return ts, err == nil, err
}
