// Package names keeps workspace names unique with a JetStream KV bucket:
// Create on a key is atomic, so of two concurrent creates with one name
// exactly one claims it.
package names

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/bus"
	"github.com/berthdev/berth/services/api/internal/app"
)

// Registry is the name-claims bucket.
type Registry struct {
	kv jetstream.KeyValue
}

// Open creates the bucket if needed.
func Open(ctx context.Context, js jetstream.JetStream) (*Registry, error) {
	kv, err := bus.Bucket(ctx, js, events.NameClaimsBucket)
	if err != nil {
		return nil, fmt.Errorf("open kv %s: %w", events.NameClaimsBucket, err)
	}
	return &Registry{kv: kv}, nil
}

// Claim gives name to id, taking it over from a holder that stale says is
// gone. It returns app.ErrNameTaken when another live workspace holds it.
func (r *Registry) Claim(ctx context.Context, name, id string, stale func(holder string, claimedAt time.Time) bool) error {
	_, err := r.kv.Create(ctx, name, []byte(id))
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("claim name %s: %w", name, err)
	}
	entry, err := r.kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return r.Claim(ctx, name, id, stale)
	}
	if err != nil {
		return fmt.Errorf("read claim %s: %w", name, err)
	}
	holder := string(entry.Value())
	if holder == id {
		return nil
	}
	if !stale(holder, entry.Created()) {
		return app.ErrNameTaken
	}
	if _, err := r.kv.Update(ctx, name, []byte(id), entry.Revision()); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return app.ErrNameTaken
		}
		return fmt.Errorf("take over name %s: %w", name, err)
	}
	return nil
}
