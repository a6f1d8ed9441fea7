package adapters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthdev/berth/services/api/internal/app"
)

// Credentials is the systems bucket as app.Credentials: name -> bcrypt
// hash of the system's bus password.
type Credentials struct{ kv jetstream.KeyValue }

var _ app.Credentials = Credentials{}

// NewCredentials adapts the systems bucket.
func NewCredentials(kv jetstream.KeyValue) Credentials { return Credentials{kv: kv} }

// Put stores name's hash.
func (c Credentials) Put(ctx context.Context, name, hash string) error {
	_, err := c.kv.Put(ctx, name, []byte(hash))
	return err
}

// Delete removes name's hash (gone already is fine).
func (c Credentials) Delete(ctx context.Context, name string) error {
	if err := c.kv.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	return nil
}

// Watch follows the bucket (one watcher, until ctx ends) and returns a
// function that gives the current hashes by system name.
func (c Credentials) Watch(ctx context.Context) (func() map[string]string, error) {
	w, err := c.kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch credentials: %w", err)
	}
	var (
		mu     sync.Mutex
		hashes = map[string]string{}
		ready  = make(chan struct{})
	)
	go func() {
		defer func() { _ = w.Stop() }()
		for e := range w.Updates() {
			if e == nil { // the initial values are all in
				close(ready)
				continue
			}
			mu.Lock()
			if e.Operation() == jetstream.KeyValuePut {
				hashes[e.Key()] = string(e.Value())
			} else {
				delete(hashes, e.Key())
			}
			mu.Unlock()
		}
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return func() map[string]string {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(hashes)
	}, nil
}

// Seen is the intake bucket as app.Seen. A claim is a pending record with
// its time; one older than staleClaim (its replica died mid-command) may
// be taken over.
type Seen struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

var _ app.Seen = Seen{}

const staleClaim = time.Minute

// record is a stored claim or reply.
type record struct {
	PendingSince *time.Time      `json:"pending_since,omitempty"`
	Reply        app.IntakeReply `json:"reply"`
}

// errMalformedRecord: a record of the intake bucket that Berth did not
// write (only the API writes it): never replayed to a sender as a reply.
var errMalformedRecord = errors.New("not a record Berth wrote")

// code is the shape of every reply code (unknown_system, name_taken, ...).
var code = regexp.MustCompile(`^[a-z][a-z_]{0,63}$`)

// wellFormed: pending (and nothing else) or a reply whose workspace is an
// id and whose code is a code, accepted or not.
func (r record) wellFormed() bool {
	if r.PendingSince != nil {
		return r.Reply == app.IntakeReply{}
	}
	if r.Reply.WorkspaceID != "" {
		if u, err := uuid.Parse(r.Reply.WorkspaceID); err != nil || u.String() != r.Reply.WorkspaceID {
			return false
		}
	}
	if r.Reply.Accepted {
		return r.Reply.Code == ""
	}
	return code.MatchString(r.Reply.Code)
}

// NewSeen adapts the intake bucket.
func NewSeen(kv jetstream.KeyValue) Seen { return Seen{kv: kv, now: time.Now} }

// SeenWithClock is s with another clock (tests).
func SeenWithClock(s Seen, now func() time.Time) Seen { s.now = now; return s }

// Claim creates key's pending record, or reports what is there.
func (s Seen) Claim(ctx context.Context, key string) (app.IntakeReply, bool, bool, error) {
	now := s.now()
	pending, err := json.Marshal(record{PendingSince: &now})
	if err != nil {
		return app.IntakeReply{}, false, false, err
	}
	if _, err := s.kv.Create(ctx, key, pending); err == nil {
		return app.IntakeReply{}, false, false, nil
	} else if !errors.Is(err, jetstream.ErrKeyExists) {
		return app.IntakeReply{}, false, false, err
	}
	e, err := s.kv.Get(ctx, key)
	if err != nil {
		return app.IntakeReply{}, false, false, err
	}
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return app.IntakeReply{}, false, false, fmt.Errorf("stored record %s: %w", key, err)
	}
	if !r.wellFormed() {
		return app.IntakeReply{}, false, false, fmt.Errorf("stored record %s: %w", key, errMalformedRecord)
	}
	if r.PendingSince == nil {
		return r.Reply, false, true, nil
	}
	if now.Sub(*r.PendingSince) < staleClaim {
		return app.IntakeReply{}, true, true, nil
	}
	// Its claimer died: take the claim over, unless someone else just did.
	if _, err := s.kv.Update(ctx, key, pending, e.Revision()); err != nil {
		return app.IntakeReply{}, true, true, nil
	}
	return app.IntakeReply{}, false, false, nil
}

// Put stores key's reply.
func (s Seen) Put(ctx context.Context, key string, r app.IntakeReply) error {
	b, err := json.Marshal(record{Reply: r})
	if err != nil {
		return err
	}
	_, err = s.kv.Put(ctx, key, b)
	return err
}

// Release forgets key.
func (s Seen) Release(ctx context.Context, key string) error {
	if err := s.kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	return nil
}
