package natsbus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// KeyValue binds to cfg.Bucket and creates it only when it does not exist.
// Binding first matters: only the API's identity may create or change
// streams (a bucket is a stream, and a stream's republish or transform
// settings could write onto the log's subjects), so the other services
// bind to the buckets the API declared at its start.
// Through an Owner (the API's handle) it creates or updates the bucket, so
// a changed setting (a session TTL, replicas) takes effect.
func KeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	if _, ok := js.(Owner); ok {
		kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("declare kv %s: %w", cfg.Bucket, err)
		}
		return kv, nil
	}
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("open kv %s: %w", cfg.Bucket, err)
	}
	kv, err = js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		return js.KeyValue(ctx, cfg.Bucket) // another service created it meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("create kv %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// Owner is the JetStream handle of the identity that declares streams and
// buckets (the API): KeyValue creates or updates through it.
type Owner struct{ jetstream.JetStream }
