// Package bus declares Berth's NATS resources in one place: the log
// stream, the dead-letter stream and every KV bucket, from one replicas
// setting. Only the API's identity declares (at its start); the other
// services bind to what it declared and may not change it (see
// natsbus.Permissions). Names and value formats live in pkg/events.
package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthdev/berth/pkg/events"
)

// ErrNotDeclared is returned by Bucket when the bucket does not exist yet:
// the API has not started against this NATS.
var ErrNotDeclared = errors.New("not declared yet (the API declares the streams and buckets when it starts)")

// Options are the installation-wide settings of the NATS resources.
type Options struct {
	// Replicas of every stream and bucket: 1 on a single server, 3 on a
	// three-node cluster (default 1).
	Replicas int
	// DuplicateWindow is how long the log remembers event ids to drop a
	// retried append (default 2m).
	DuplicateWindow time.Duration
	// SessionTTL is how long a browser session lives (default 8h).
	SessionTTL time.Duration
}

func (o Options) withDefaults() Options {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.DuplicateWindow <= 0 {
		o.DuplicateWindow = 2 * time.Minute
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 8 * time.Hour
	}
	return o
}

// Streams are the streams Berth declares: the audit log and the dead
// letters (with the redrive requests).
func Streams(o Options) []jetstream.StreamConfig {
	o = o.withDefaults()
	return []jetstream.StreamConfig{{
		Name:        events.Stream,
		Description: "Berth audit log: one subject per workspace and kind, plus the image catalog and user settings",
		Subjects:    events.StreamSubjects,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		Retention:   jetstream.LimitsPolicy,
		Duplicates:  o.DuplicateWindow,
		// The log is an audit trail: nothing is deleted or purged through
		// the API, and messages never expire.
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true,
	}, {
		Name:        events.DeadLetterStream,
		Description: "messages a consumer could never handle, with the reason; and admins' retries of them",
		Subjects:    []string{events.DeadLetterSubjectPrefix + ">", events.RedriveSubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
	}}
}

// IntakeMemory is how long the intake remembers an applied command, so a
// duplicate sent later is answered, not applied again.
const IntakeMemory = 30 * 24 * time.Hour

// Buckets are the KV buckets Berth declares. File storage for all: a
// memory bucket would vanish when NATS restarts.
func Buckets(o Options) []jetstream.KeyValueConfig {
	o = o.withDefaults()
	kv := func(name, description string, ttl time.Duration) jetstream.KeyValueConfig {
		return jetstream.KeyValueConfig{Bucket: name, Description: description, History: 1, TTL: ttl,
			Storage: jetstream.FileStorage, Replicas: o.Replicas}
	}
	return []jetstream.KeyValueConfig{
		kv(events.NameClaimsBucket, "workspace name -> workspace id, for unique names", 0),
		kv(events.ServiceStatusBucket, "provisioner engine reachability", events.EngineReportTTL),
		kv(events.ActivityBucket, "last activity per workspace", 0),
		kv(events.SessionsBucket, "browser sessions (hashes only)", o.SessionTTL),
		kv(events.InstallationBucket, "this Berth installation's id", 0),
		kv(events.SystemsBucket, "registered systems' bus credentials (bcrypt hashes)", 0),
		kv(events.IntakeBucket, "intake commands applied, by system, source and id, with their replies", IntakeMemory),
	}
}

// Declare creates or updates every stream and bucket, so a changed
// setting (replicas, a session TTL) takes effect at the API's next start.
func Declare(ctx context.Context, js jetstream.JetStream, o Options) error {
	for _, cfg := range Streams(o) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("declare stream %s: %w", cfg.Name, err)
		}
	}
	for _, cfg := range Buckets(o) {
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("declare kv %s: %w", cfg.Bucket, err)
		}
	}
	return nil
}

// Bucket binds to a declared bucket; it never creates one.
func Bucket(ctx context.Context, js jetstream.JetStream, name string) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("kv %s: %w", name, ErrNotDeclared)
	}
	if err != nil {
		return nil, fmt.Errorf("kv %s: %w", name, err)
	}
	return kv, nil
}
