package adapters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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

// Hashes returns every stored hash by system name.
func (c Credentials) Hashes(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	keys, err := c.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	for name := range keys.Keys() {
		e, err := c.kv.Get(ctx, name)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("credential of %s: %w", name, err)
		}
		out[name] = string(e.Value())
	}
	return out, nil
}

// Seen is the intake bucket as app.Seen.
type Seen struct{ kv jetstream.KeyValue }

var _ app.Seen = Seen{}

// NewSeen adapts the intake bucket.
func NewSeen(kv jetstream.KeyValue) Seen { return Seen{kv: kv} }

// Get returns the reply stored for key.
func (s Seen) Get(ctx context.Context, key string) (app.IntakeReply, bool, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return app.IntakeReply{}, false, nil
	}
	if err != nil {
		return app.IntakeReply{}, false, err
	}
	var r app.IntakeReply
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return app.IntakeReply{}, false, fmt.Errorf("stored reply %s: %w", key, err)
	}
	return r, true, nil
}

// Put stores key's reply.
func (s Seen) Put(ctx context.Context, key string, r app.IntakeReply) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = s.kv.Put(ctx, key, b)
	return err
}
