// Package enginestatus lets provisioners report whether they reach the
// container engine, and the API ask before accepting a start. Reports live
// in a KV bucket whose entries expire, so a dead provisioner's last word
// does not linger.
package enginestatus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/bus"
)

// TTL is how long a report stays valid; provisioners report every TTL/4.
const TTL = events.EngineReportTTL

// ErrEngineUnavailable is returned by Check when provisioners report in and
// none of them reaches its engine.
var ErrEngineUnavailable = errors.New("no provisioner reaches the container engine")

// Report is one provisioner's last word.
type Report = events.EngineReport

// Board is the status bucket.
type Board struct{ kv jetstream.KeyValue }

// Open creates the bucket if needed.
func Open(ctx context.Context, js jetstream.JetStream) (*Board, error) {
	kv, err := bus.Bucket(ctx, js, events.ServiceStatusBucket)
	if err != nil {
		return nil, fmt.Errorf("open kv %s: %w", events.ServiceStatusBucket, err)
	}
	return &Board{kv: kv}, nil
}

// Publish records instance's engine reachability (engineErr nil = ok).
func (b *Board) Publish(ctx context.Context, instance string, engineErr error, now time.Time) error {
	r := Report{EngineOK: engineErr == nil, At: now.UTC()}
	if engineErr != nil {
		r.Error = engineErr.Error()
	}
	body, _ := json.Marshal(r)
	if _, err := b.kv.Put(ctx, events.EngineReportKeyPrefix+instance, body); err != nil {
		return fmt.Errorf("publish engine status: %w", err)
	}
	return nil
}

// Check returns ErrEngineUnavailable when at least one provisioner reports
// and none reaches its engine. With no reports at all it returns nil: the
// request is recorded and carried out once a provisioner runs.
func (b *Board) Check(ctx context.Context) error {
	lister, err := b.kv.ListKeys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read engine status: %w", err)
	}
	var reports, failures []string
	for key := range lister.Keys() {
		if !strings.HasPrefix(key, events.EngineReportKeyPrefix) {
			continue
		}
		entry, err := b.kv.Get(ctx, key)
		if err != nil {
			continue // expired between list and get
		}
		var r Report
		if json.Unmarshal(entry.Value(), &r) != nil {
			continue
		}
		if r.EngineOK {
			return nil
		}
		reports = append(reports, key)
		failures = append(failures, r.Error)
	}
	if len(reports) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrEngineUnavailable, strings.Join(failures, "; "))
}
