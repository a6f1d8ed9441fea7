// Package installation names one Berth installation, so everything it
// creates on a container engine can be told apart from another
// installation's on the same engine (a dev and a staging stack, a test run
// beside a running stack).
package installation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/bus"
)

// Bucket keeps the generated id; no TTL, so it outlives every service.
const Bucket = events.InstallationBucket

const key = events.InstallationKey

var valid = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// Validate checks a configured id (BERTH_INSTALLATION).
func Validate(id string) error {
	if !valid.MatchString(id) {
		return fmt.Errorf("installation id %q: want 1-32 lowercase letters, digits or '-'", id)
	}
	return nil
}

// Resolve returns configured if set; otherwise the id kept in the log's
// NATS, generating it on first use. Every service of an installation shares
// one NATS, so they agree without configuration, and the id survives
// restarts.
func Resolve(ctx context.Context, js jetstream.JetStream, configured string) (string, error) {
	if configured != "" {
		return configured, Validate(configured)
	}
	kv, err := bus.Bucket(ctx, js, Bucket)
	if err != nil {
		return "", fmt.Errorf("open kv %s: %w", Bucket, err)
	}
	if e, err := kv.Get(ctx, key); err == nil {
		return stored(e.Value())
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", fmt.Errorf("read installation id: %w", err)
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	id := hex.EncodeToString(b)
	if _, err := kv.Create(ctx, key, []byte(id)); err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return "", fmt.Errorf("store installation id: %w", err)
		}
		e, err := kv.Get(ctx, key) // another service won the race: use its id
		if err != nil {
			return "", fmt.Errorf("read installation id: %w", err)
		}
		return stored(e.Value())
	}
	return id, nil
}

// stored checks the id read from the bucket: it names every object Berth
// owns on the engine, so a value someone else wrote there (a hostile
// publisher, a bad restore) is refused, never used.
func stored(v []byte) (string, error) {
	id := string(v)
	if err := Validate(id); err != nil {
		return "", fmt.Errorf("the installation id stored in KV %s/%s is not valid, refusing it (set BERTH_INSTALLATION to the right id, or repair the key): %w", Bucket, key, err)
	}
	return id, nil
}
