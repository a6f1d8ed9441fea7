package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/berthdev/berth/pkg/events"
)

// DiskUse is what one workspace occupies on the engine's disk.
type DiskUse struct {
	// Writable is the container's writable layer (what it wrote outside
	// its volumes), Home its home volume.
	Writable, Home int64
}

// Total is what counts against the workspace's limit.
func (u DiskUse) Total() int64 { return u.Writable + u.Home }

// DiskMeter measures every workspace of this installation at once (one
// engine call per kind, not one per workspace); a workspace it cannot see
// (another node's, in Swarm) is absent. With an error wrapping
// ErrHomeStale the measurement is still usable: the writable layers are
// fresh, the home volumes the last figures it had.
type DiskMeter interface {
	DiskUsage(ctx context.Context) (map[string]DiskUse, error)
}

// ErrHomeStale: the engine could not size the home volumes this time.
var ErrHomeStale = errors.New("home volumes not measured this time; using the last sizes")

// DiskLimit is the workspace's effective disk limit: its own, or the
// installation's bound for workspaces defined before disk limits.
func DiskLimit(r events.Resources, max int64) int64 {
	if r.DiskBytes > 0 {
		return r.DiskBytes
	}
	return max
}

// DiskVerdict is what the disk watch does about one workspace.
type DiskVerdict int

const (
	DiskOK DiskVerdict = iota
	// DiskWarn: near or over the limit and not yet warned this run.
	DiskWarn
	// DiskStop: still over the limit after the warning's grace.
	DiskStop
)

func (v DiskVerdict) String() string {
	switch v {
	case DiskWarn:
		return "warn"
	case DiskStop:
		return "stop"
	}
	return "ok"
}

// WarnAt is the share of its limit a workspace may use before it is
// warned, in percent.
const WarnAt = 90

// DecideDisk judges one running workspace's use against its limit. Pure:
// the watch feeds it the projection's state, a measurement and a clock. A
// workspace is warned once per run (at WarnAt % or over), and stopped only
// when it is over the limit, was warned, and the warning's stop_after has
// passed: the owner gets the grace to delete files, and a fast writer is
// stopped one check after its warning.
func DecideDisk(ws events.Workspace, use DiskUse, limit int64, now time.Time) DiskVerdict {
	if ws.Status != events.StatusRunning || limit <= 0 {
		return DiskOK
	}
	used := use.Total()
	over := used > limit
	switch w := ws.DiskWarning; {
	case w == nil && used*100 >= limit*WarnAt:
		return DiskWarn
	case w != nil && over && !now.Before(w.StopAfter):
		return DiskStop
	}
	return DiskOK
}

// DiskWatch measures running workspaces on every tick, warns those near
// or over their disk limit (disk_warning) and stops those still over it
// after the grace (failed, disk_quota_exceeded): nothing bounds a home
// volume on the engine's local driver, so a workspace could otherwise fill
// the disk that holds the log and every archive.
type DiskWatch struct {
	Log        Log
	Projection Workspaces
	Meter      DiskMeter
	Engine     interface {
		EnsureStopped(ctx context.Context, id string) (int, error)
	}
	// Driver's lock keeps the watch from acting beside a handler.
	Driver Driver
	Logger *slog.Logger
	// Max is BERTH_MAX_DISK: the limit of workspaces defined without one.
	Max int64
	// Grace is how long after its warning a workspace over its limit
	// keeps running.
	Grace time.Duration
	// Drain is the wait between recording the stop (router-sync drops the
	// route) and stopping the container.
	Drain time.Duration
	// Timeout bounds one check (DefaultDiskCheckTimeout if 0): an engine
	// busy walking its disk must not stall the watch unseen.
	Timeout time.Duration
	Now     func() time.Time
}

// DefaultDiskCheckTimeout is DiskWatch.Timeout's default.
const DefaultDiskCheckTimeout = time.Minute

// Run checks on every tick until ctx ends; a failed check is logged and
// the next tick tries again.
func (d *DiskWatch) Run(ctx context.Context, ticks <-chan time.Time) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
			if err := d.Check(ctx); err != nil && ctx.Err() == nil {
				d.Logger.Warn("disk check failed", "err", err)
			}
		}
	}
}

// Check runs one measurement and acts on it.
func (d *DiskWatch) Check(ctx context.Context) error {
	running := d.Projection.Workspaces(func(ws events.Workspace) bool { return ws.Status == events.StatusRunning })
	if len(running) == 0 {
		return nil
	}
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultDiskCheckTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	usage, err := d.Meter.DiskUsage(ctx)
	switch {
	case errors.Is(err, ErrHomeStale) && usage != nil:
		d.Logger.Warn("disk check partial", "err", err)
	case err != nil:
		return fmt.Errorf("measure disk use: %w", err)
	}
	now := d.Now()
	for _, ws := range running {
		use, ok := usage[ws.ID]
		if !ok {
			continue
		}
		limit := DiskLimit(ws.Resources, d.Max)
		v := DecideDisk(ws, use, limit, now)
		if v == DiskOK {
			continue
		}
		if err := d.act(ctx, ws, v, use, limit, now); err != nil {
			d.Logger.Warn("disk quota not enforced", "workspace", ws.Name, "verdict", v.String(), "err", err)
		}
	}
	return nil
}

// act records the verdict against the snapshot's version, under the
// workspace's lock, so a newer request (a stop, a delete) always wins.
func (d *DiskWatch) act(ctx context.Context, ws events.Workspace, v DiskVerdict, use DiskUse, limit int64, now time.Time) error {
	unlock, ok := d.Driver.TryExclusive(ws.ID)
	if !ok {
		return nil // a handler is on it; the next check looks again
	}
	defer unlock()
	if cur, _ := d.Projection.Workspace(ws.ID); cur.Version != ws.Version {
		return nil
	}
	used := fmt.Sprintf("%d MiB (writable layer %d MiB, home volume %d MiB)", use.Total()>>20, use.Writable>>20, use.Home>>20)
	meta := events.Meta{Source: source, Actor: "service:provisioner", CorrelationID: uuid.NewString()}
	var p events.Payload
	switch v {
	case DiskWarn:
		stopAfter := now.Add(d.Grace)
		meta.Reason = fmt.Sprintf("disk use %s of the %d MiB limit; over the limit at %s it is stopped", used, limit>>20, stopAfter.UTC().Format(time.RFC3339))
		p = &events.DiskWarning{UsedBytes: use.Total(), LimitBytes: limit, StopAfter: stopAfter}
	case DiskStop:
		msg := fmt.Sprintf("the workspace used %s, over its %d MiB disk limit, and was stopped; start it and delete files within the grace, or ask an admin to raise its disk limit", used, limit>>20)
		meta.Reason = msg
		p = &events.Failed{Code: "disk_quota_exceeded", Message: msg, Retryable: true}
	}
	e, err := events.New(ws.ID, p, meta, now)
	if err != nil {
		return err
	}
	if _, err := d.Log.Append(ctx, e, ws.Version); errors.Is(err, ErrConflict) {
		return nil
	} else if err != nil {
		return fmt.Errorf("record %s: %w", p.EventType(), err)
	}
	d.Logger.Warn("workspace over its disk limit", "workspace", ws.Name, "verdict", v.String(), "used_bytes", use.Total(), "limit_bytes", limit)
	if v != DiskStop {
		return nil
	}
	// Recorded first, stopped second: router-sync drops the route on the
	// failure, and a stop that fails here is a stray container the
	// reconciler stops.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d.Drain):
	}
	if _, err := d.Engine.EnsureStopped(ctx, ws.ID); err != nil {
		return fmt.Errorf("stop over its disk limit: %w", err)
	}
	return nil
}
