// Package app is the reaper's use case: the Sweeper runs the policy over
// every workspace and appends what it decides. It never touches Docker: the
// provisioner carries the requests out, so every reaping is in the audit
// log with its reason.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/services/reaper/internal/policy"
)

// ErrConflict is what Log.Append returns (wrapped) when the workspace moved
// past the expected version: another writer, or another reaper, was first.
var ErrConflict = errors.New("the workspace changed since it was read")

// Log is where requests are appended, with optimistic concurrency; a lost
// race returns an error wrapping ErrConflict.
type Log interface {
	Append(ctx context.Context, e events.Envelope, expected uint64) (uint64, error)
}

// Workspaces is the reaper's projection of the log.
type Workspaces interface {
	Workspaces(keep func(events.Workspace) bool) []events.Workspace
}

// Activity answers when a workspace was last used.
type Activity interface {
	LastSeen(ctx context.Context, id string) (time.Time, bool, error)
}

// Confirmer is an Activity whose LastSeen may lag (a cache): before the
// reaper warns or stops on idleness it reads the record itself.
type Confirmer interface {
	Confirm(ctx context.Context, id string) (time.Time, bool, error)
}

// Sweeper applies the policy. Several replicas may sweep at once: every
// append names the workspace version the decision was made on, so only the
// first replica's request is stored; the others get a conflict and move on.
type Sweeper struct {
	Log        Log
	Workspaces Workspaces
	Activity   Activity
	Policy     policy.Settings
	Now        func() time.Time
	Logger     *slog.Logger
	Meter      metric.Meter
	// Instance names this replica in the events' actor.
	Instance string

	actions metric.Int64Counter
}

// Result counts one sweep's outcomes.
type Result struct {
	Checked   int
	Acted     map[policy.Action]int
	Conflicts int // another writer changed the workspace first
	Failures  int
}

const source = "berth/reaper"

// Sweep decides for every workspace and appends the requests. A failure on
// one workspace is logged and counted; it never stops the sweep.
func (s *Sweeper) Sweep(ctx context.Context) Result {
	if s.actions == nil {
		m := s.Meter
		if m == nil {
			m = noop.NewMeterProvider().Meter("")
		}
		s.actions, _ = m.Int64Counter("berth_reaper_actions", metric.WithDescription("requests appended by the reaper, by action and outcome"))
	}
	now := s.Now()
	res := Result{Acted: map[policy.Action]int{}}
	for _, ws := range s.Workspaces.Workspaces(nil) {
		if ctx.Err() != nil {
			break
		}
		res.Checked++
		act, err := s.one(ctx, ws, now)
		outcome := "appended"
		switch {
		case errors.Is(err, ErrConflict):
			res.Conflicts++
			outcome = "conflict"
			s.Logger.Debug("workspace changed meanwhile; leaving it to the next sweep", "workspace", ws.Name, "id", ws.ID)
		case err != nil:
			res.Failures++
			outcome = "failed"
			s.Logger.Warn("reaping failed for one workspace; continuing", "workspace", ws.Name, "id", ws.ID, "action", act.String(), "err", err)
		case act != policy.None:
			res.Acted[act]++
		}
		if act != policy.None {
			s.actions.Add(ctx, 1, metric.WithAttributes(attribute.String("action", act.String()), attribute.String("outcome", outcome)))
		}
	}
	return res
}

func (s *Sweeper) one(ctx context.Context, ws events.Workspace, now time.Time) (policy.Action, error) {
	var last time.Time
	if ws.Status == events.StatusRunning && !ws.Hold {
		seen, ok, err := s.Activity.LastSeen(ctx, ws.ID)
		if err != nil {
			// Without the activity record the reaper cannot know the
			// workspace is idle: never stop on missing data.
			return policy.None, fmt.Errorf("read activity: %w", err)
		}
		if ok {
			last = seen
		}
	}
	d := policy.Decide(s.Policy, ws, last, now)
	if c, ok := s.Activity.(Confirmer); ok && (d.Action == policy.Warn || d.Action == policy.Stop) {
		// Idle by the cache: idle by the record too? (A lagging cache
		// must never stop a workspace someone is using.)
		seen, found, err := c.Confirm(ctx, ws.ID)
		if err != nil {
			return policy.None, fmt.Errorf("confirm activity: %w", err)
		}
		if found && seen.After(last) {
			d = policy.Decide(s.Policy, ws, seen, now)
		}
	}
	var p events.Payload
	var why string
	switch d.Action {
	case policy.None:
		return d.Action, nil
	case policy.Warn:
		p = &events.IdleWarning{IdleSince: d.IdleSince, StopAt: d.StopAt}
		why = fmt.Sprintf("idle since %s; stops at %s unless used", d.IdleSince.Format(time.RFC3339), d.StopAt.Format(time.RFC3339))
	case policy.Stop:
		p = &events.StopRequested{}
		why = policy.ReasonIdle
	case policy.Archive:
		p = &events.ArchiveRequested{}
		why = policy.ReasonRetention
	case policy.Delete:
		p = &events.DeleteRequested{}
		why = policy.ReasonRetention
	}
	actor := "service:reaper"
	if s.Instance != "" {
		actor += ":" + s.Instance
	}
	// A reaper decision starts its own correlation: what the provisioner
	// does about it carries the same id.
	e, err := events.New(ws.ID, p, events.Meta{Source: source, Actor: actor, Reason: why, CorrelationID: uuid.NewString()}, now)
	if err != nil {
		return d.Action, err
	}
	if _, err := s.Log.Append(ctx, e, ws.Version); err != nil {
		return d.Action, fmt.Errorf("append %s: %w", p.EventType(), err)
	}
	s.Logger.Info("workspace reaped", "workspace", ws.Name, "id", ws.ID, "action", d.Action.String(), "reason", why)
	return d.Action, nil
}

// Run sweeps on every tick until ctx ends. Ticks come from the caller (a
// time.Ticker in production, a channel in tests) so time is injectable.
func (s *Sweeper) Run(ctx context.Context, ticks <-chan time.Time) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
			r := s.Sweep(ctx)
			s.Logger.Debug("sweep done", "checked", r.Checked, "acted", r.Acted, "conflicts", r.Conflicts, "failures", r.Failures)
		}
	}
}
