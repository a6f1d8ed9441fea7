// Package policy is the reaper's decision: given a workspace, its last
// activity and the time, what (if anything) to ask for. It is pure, so every
// rule is table-tested with a fixed clock.
package policy

import (
	"math"
	"time"

	"github.com/berthdev/berth/pkg/events"
)

// Settings are the lifecycle policy (see config.Lifecycle).
type Settings struct {
	// IdleTimeout stops a running workspace idle this long (0 = never).
	IdleTimeout time.Duration
	// MinIdleTimeout and MaxIdleTimeout bound per-workspace overrides.
	MinIdleTimeout time.Duration
	MaxIdleTimeout time.Duration
	// Warning appends an idle warning this long before the stop (0 = none).
	Warning time.Duration
	// Retention archives, then deletes, a workspace stopped this long
	// (0 = never).
	Retention time.Duration
	// ArchiveRetry is the wait after a failed archive before another try.
	ArchiveRetry time.Duration
}

// Action is what the reaper appends.
type Action int

const (
	None Action = iota
	Warn
	Stop
	Archive
	Delete
)

func (a Action) String() string {
	return [...]string{"none", "warn", "stop", "archive", "delete"}[a]
}

// Reasons recorded with the reaper's events.
const (
	ReasonIdle      = "idle"
	ReasonRetention = "retention"
)

// Decision is what to do about one workspace and why.
type Decision struct {
	Action Action
	Reason string
	// IdleSince and StopAt fill the idle warning.
	IdleSince time.Time
	StopAt    time.Time
}

// IdleTimeoutFor is the timeout that applies to ws: its override clamped to
// the admin bounds, or the default. Zero means never.
func (s Settings) IdleTimeoutFor(ws events.Workspace) time.Duration {
	if ws.IdleTimeoutSeconds <= 0 {
		return s.IdleTimeout
	}
	d := time.Duration(math.MaxInt64) // beyond what a Duration holds: as long as it gets
	if ws.IdleTimeoutSeconds <= int64(math.MaxInt64/time.Second) {
		d = time.Duration(ws.IdleTimeoutSeconds) * time.Second
	}
	if s.MinIdleTimeout > 0 && d < s.MinIdleTimeout {
		d = s.MinIdleTimeout
	}
	if s.MaxIdleTimeout > 0 && d > s.MaxIdleTimeout {
		d = s.MaxIdleTimeout
	}
	return d
}

// Decide applies the policy. lastActivity is the zero time when nothing
// was ever recorded; activity older than the current status is ignored (a
// workspace's idle clock restarts when it starts).
func Decide(s Settings, ws events.Workspace, lastActivity, now time.Time) Decision {
	if ws.Hold {
		return Decision{}
	}
	switch ws.Status {
	case events.StatusRunning:
		return decideRunning(s, ws, lastActivity, now)
	case events.StatusStopped:
		if s.Retention <= 0 {
			return Decision{}
		}
		wait := s.Retention
		if ws.LastError != "" {
			// The last archive failed (status_since is the failure): try
			// again sooner than a full retention, but not in a tight loop.
			wait = s.ArchiveRetry
		}
		if !now.Before(ws.StatusSince.Add(wait)) {
			return Decision{Action: Archive, Reason: ReasonRetention}
		}
	case events.StatusArchived:
		// Only a recorded, verified archive allows deleting the volume.
		if s.Retention > 0 && ws.Archive != nil && ws.Archive.SHA256 != "" {
			return Decision{Action: Delete, Reason: ReasonRetention}
		}
	}
	return Decision{}
}

// decideRunning is the idle rule: warn, then stop.
func decideRunning(s Settings, ws events.Workspace, lastActivity, now time.Time) Decision {
	timeout := s.IdleTimeoutFor(ws)
	if timeout <= 0 {
		return Decision{}
	}
	idleSince := ws.StatusSince
	if lastActivity.After(idleSince) {
		idleSince = lastActivity
	}
	stopAt := idleSince.Add(timeout)
	if !now.Before(stopAt) {
		return Decision{Action: Stop, Reason: ReasonIdle, IdleSince: idleSince, StopAt: stopAt}
	}
	warned := ws.IdleWarning != nil && !ws.IdleWarning.IdleSince.Before(idleSince)
	// Never warn in the first half of a short timeout: a warning the
	// moment a workspace starts tells the user nothing.
	warning := min(s.Warning, timeout/2)
	if warning > 0 && !warned && !now.Before(stopAt.Add(-warning)) {
		return Decision{Action: Warn, Reason: ReasonIdle, IdleSince: idleSince, StopAt: stopAt}
	}
	return Decision{}
}
