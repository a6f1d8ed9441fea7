// Package reapertest lets tests outside the reaper module drive its sweeper:
// the end-to-end test runs two reapers with a fake clock against the real
// stack. It is the only way in; the use case itself stays internal.
package reapertest

import (
	"context"
	"log/slog"
	"time"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/activity"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/services/reaper/internal/app"
	"github.com/berthdev/berth/services/reaper/internal/policy"
)

// Settings are the lifecycle policy the sweeper applies.
type Settings = policy.Settings

// Config is one reaper replica.
type Config struct {
	Log        *eventlog.Log
	Workspaces *events.Projection // kept current by the caller
	Activity   *activity.Tracker
	Settings   Settings
	Now        func() time.Time
	Instance   string       // the events' actor is service:reaper:<Instance>
	Logger     *slog.Logger // nil: discarded
}

// Sweeper is one reaper replica, swept by hand.
type Sweeper struct{ s *app.Sweeper }

// New returns a replica wired as the reaper's main wires it.
func New(c Config) *Sweeper {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sweeper{s: &app.Sweeper{Log: c.Log.ConflictAs(app.ErrConflict), Workspaces: c.Workspaces, Activity: c.Activity,
		Policy: c.Settings, Now: c.Now, Logger: c.Logger, Instance: c.Instance}}
}

// Sweep applies the policy to every workspace once.
func (s *Sweeper) Sweep(ctx context.Context) { s.s.Sweep(ctx) }
