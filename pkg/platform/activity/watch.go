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

// Watched keeps the whole activity bucket in memory, fed by a watcher, so
// a sweep over 10,000 workspaces asks the bus nothing. Confirm reads one
// record itself: whoever acts on idleness (stopping a workspace) checks
// the bus's word, not a cache that could lag.
type Watched struct {
	kv    jetstream.KeyValue
	log   *slog.Logger
	ready chan struct{}

	mu   sync.RWMutex
	seen map[string]time.Time
}

// Watch starts keeping the bucket until ctx ends. LastSeen waits until
// the bucket's current values are loaded.
func Watch(ctx context.Context, js jetstream.JetStream, log *slog.Logger) (*Watched, error) {
	kv, err := bus.Bucket(ctx, js, events.ActivityBucket)
	if err != nil {
		return nil, fmt.Errorf("open kv %s: %w", events.ActivityBucket, err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch kv %s: %w", events.ActivityBucket, err)
	}
	a := &Watched{kv: kv, log: log, ready: make(chan struct{}), seen: map[string]time.Time{}}
	go a.follow(ctx, w)
	return a, nil
}

func (a *Watched) follow(ctx context.Context, w jetstream.KeyWatcher) {
	defer func() { _ = w.Stop() }()
	loaded := sync.OnceFunc(func() { close(a.ready) })
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil { // the current values are all in
				loaded()
				continue
			}
			a.apply(e)
		}
	}
}

func (a *Watched) apply(e jetstream.KeyValueEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(a.seen, e.Key())
		return
	}
	at, err := time.Parse(events.ActivityFormat, string(e.Value()))
	if err != nil {
		a.log.Warn("activity record not a time; ignored", "workspace", e.Key(), "err", err)
		return
	}
	if at.After(a.seen[e.Key()]) {
		a.seen[e.Key()] = at
	}
}

// LastSeen is the last activity of id as the watcher has it.
func (a *Watched) LastSeen(ctx context.Context, id string) (time.Time, bool, error) {
	select {
	case <-a.ready:
	case <-ctx.Done():
		return time.Time{}, false, fmt.Errorf("activity not loaded yet: %w", ctx.Err())
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	at, ok := a.seen[id]
	return at, ok, nil
}

// Confirm reads id's record from the bucket itself.
func (a *Watched) Confirm(ctx context.Context, id string) (time.Time, bool, error) {
	e, err := a.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	at, err := time.Parse(events.ActivityFormat, string(e.Value()))
	return at, err == nil, err
}
