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

	"github.com/berthdev/berth/pkg/events"
)

// Observed is a Berth-labelled container as the engine reports it.
type Observed struct {
	ContainerID string
	WorkspaceID string
	Running     bool
	Created     time.Time
	// Legacy: made before installations were labelled; it counts for its
	// workspace but is never removed as an orphan.
	Legacy bool
}

// FixKind is one kind of drift repair.
type FixKind int

const (
	// FixRecordGone: the log says running, Docker has no running container.
	FixRecordGone FixKind = iota + 1
	// FixStopStray: Docker runs a container the log says is not running.
	FixStopStray
	// FixRemoveOrphan: a labelled container the log does not know (or
	// deleted), older than the grace period.
	FixRemoveOrphan
)

func (k FixKind) String() string {
	switch k {
	case FixRecordGone:
		return "record_gone"
	case FixStopStray:
		return "stop_stray"
	case FixRemoveOrphan:
		return "remove_orphan"
	}
	return "unknown"
}

// Fix is one repair the reconciler will make.
type Fix struct {
	Kind        FixKind
	WorkspaceID string
	ContainerID string
	Detail      string
	// Version is the workspace's version in the snapshot the fix was
	// derived from: the repair is made only if the log has not moved on.
	Version uint64
}

// Diff compares the log's view with the engine's and lists the repairs.
// It is pure: the sweep feeds it a snapshot and a clock. The log's view
// must be taken before the engine's: then a container that disagrees with
// its workspace changed after the workspace's recorded state, which is
// real drift (or a newer request, which the version check catches).
func Diff(wss []events.Workspace, observed []Observed, now time.Time, orphanGrace time.Duration) []Fix {
	byWS := map[string]Observed{}
	for _, o := range observed {
		byWS[o.WorkspaceID] = o
	}
	known := map[string]events.Workspace{}
	var fixes []Fix
	for _, ws := range wss {
		known[ws.ID] = ws
		c, has := byWS[ws.ID]
		switch {
		case ws.Status == events.StatusRunning && !has:
			fixes = append(fixes, Fix{Kind: FixRecordGone, WorkspaceID: ws.ID, Detail: "container_gone", Version: ws.Version})
		case ws.Status == events.StatusRunning && !c.Running:
			fixes = append(fixes, Fix{Kind: FixRecordGone, WorkspaceID: ws.ID, ContainerID: c.ContainerID, Detail: "container_exited", Version: ws.Version})
		case has && c.Running && (ws.Status == events.StatusStopped || ws.Status == events.StatusCreated ||
			ws.Status == events.StatusArchived || ws.Status == events.StatusError):
			fixes = append(fixes, Fix{Kind: FixStopStray, WorkspaceID: ws.ID, ContainerID: c.ContainerID, Version: ws.Version})
		}
	}
	for _, o := range observed {
		ws, ok := known[o.WorkspaceID]
		if !o.Legacy && (!ok || ws.Status == events.StatusDeleted) && now.Sub(o.Created) > orphanGrace {
			fixes = append(fixes, Fix{Kind: FixRemoveOrphan, WorkspaceID: o.WorkspaceID, ContainerID: o.ContainerID})
		}
	}
	return fixes
}

// Inventory is what the reconciler needs from the engine.
type Inventory interface {
	List(ctx context.Context) ([]Observed, error)
	RemoveContainer(ctx context.Context, containerID string) error
	EnsureStopped(ctx context.Context, id string) (int, error)
}

// Workspaces is the provisioner's projection of the log.
type Workspaces interface {
	Workspaces(keep func(events.Workspace) bool) []events.Workspace
	Workspace(id string) (events.Workspace, bool)
}

// Driver carries out a workspace's open request (the Provisioner).
type Driver interface {
	Handle(ctx context.Context, id string, seen uint64, lastAttempt bool) error
	// TryExclusive takes the workspace's lock if no handler holds it.
	TryExclusive(id string) (unlock func(), ok bool)
}

// Reconciler repairs drift between the log and the engine, and makes sure
// no request stays open forever.
type Reconciler struct {
	Log         Log
	Projection  Workspaces
	Engine      Inventory
	Driver      Driver
	Logger      *slog.Logger
	OrphanGrace time.Duration
	// Restart re-requests a start for a workspace whose container vanished
	// or died; otherwise it stays failed until someone starts it.
	Restart bool
	// Redrive is how long a request may stay open with nobody working on
	// it (its message dead-lettered, or lost with a crashed replica)
	// before the reconciler carries it out itself.
	Redrive time.Duration
	// Deadline is how long a workspace may stay starting or stopping
	// before it is recorded as failed (deadline_exceeded).
	Deadline time.Duration
	Now      func() time.Time
	// Meter counts repairs by kind (nil: nothing).
	Meter metric.Meter
	drift metric.Int64Counter
	// redriving bounds how many open requests are carried out at once, in
	// the background so a slow start does not hold up the sweep.
	redriving chan struct{}
}

// Sweep runs one comparison and applies its repairs. A failing repair is
// logged and does not stop the others.
func (r *Reconciler) Sweep(ctx context.Context) error {
	wss := r.Projection.Workspaces(nil) // before the engine's view: see Diff
	observed, err := r.Engine.List(ctx)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	now := r.Now()
	if r.drift == nil {
		r.drift = newInstruments(r.Meter).drift
	}
	for _, f := range Diff(wss, observed, now, r.OrphanGrace) {
		outcome := "repaired"
		if err := r.apply(ctx, f); err != nil {
			outcome = "failed"
			r.Logger.Warn("reconcile repair failed", "workspace", f.WorkspaceID, "kind", f.Kind.String(), "err", err)
		}
		r.drift.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", f.Kind.String()), attribute.String("outcome", outcome)))
	}
	for _, o := range Overdue(wss, now, r.Redrive, r.Deadline) {
		if err := r.settle(ctx, o); err != nil {
			r.Logger.Warn("open request not settled", "workspace", o.Workspace.Name, "status", o.Workspace.Status, "err", err)
		}
	}
	return nil
}

// exclusive runs f with the workspace's lock, if no handler holds it and
// the workspace is still at version: otherwise the log or a handler has
// moved on and the snapshot's conclusion no longer holds.
func (r *Reconciler) exclusive(id string, version uint64, f func() error) error {
	unlock, ok := r.Driver.TryExclusive(id)
	if !ok {
		return nil
	}
	defer unlock()
	if ws, _ := r.Projection.Workspace(id); ws.Version != version {
		return nil
	}
	return f()
}

func (r *Reconciler) apply(ctx context.Context, f Fix) error {
	switch f.Kind {
	case FixRemoveOrphan:
		r.Logger.Warn("removing orphan workspace container", "container", f.ContainerID, "workspace", f.WorkspaceID)
		return r.Engine.RemoveContainer(ctx, f.ContainerID)
	case FixStopStray:
		return r.exclusive(f.WorkspaceID, f.Version, func() error {
			r.Logger.Warn("stopping container the log says is not running", "workspace", f.WorkspaceID)
			_, err := r.Engine.EnsureStopped(ctx, f.WorkspaceID)
			return err
		})
	case FixRecordGone:
		return r.exclusive(f.WorkspaceID, f.Version, func() error { return r.recordGone(ctx, f) })
	}
	return nil
}

// recordGone appends the observation (and, by policy, a restart request)
// against the snapshot's version, so a repair never overrides a newer
// request.
func (r *Reconciler) recordGone(ctx context.Context, f Fix) error {
	msg := "the workspace container was removed outside Berth"
	if f.Detail == "container_exited" {
		msg = "the workspace container stopped outside Berth (crash, OOM or docker stop)"
	}
	// Nobody asked for this: the record starts its own correlation, and
	// the restart below is caused by it.
	meta := events.Meta{Source: source, Actor: "service:provisioner", Reason: "reconciler: " + msg, CorrelationID: uuid.NewString()}
	e, err := events.New(f.WorkspaceID, &events.Failed{Code: f.Detail, Message: msg, Retryable: true}, meta, r.Now())
	if err != nil {
		return err
	}
	seq, err := r.Log.Append(ctx, e, f.Version)
	if errors.Is(err, ErrConflict) {
		return nil
	}
	if err != nil || !r.Restart {
		return err
	}
	meta.Reason, meta.CausationID = "reconciler: restart policy", e.ID
	e, err = events.New(f.WorkspaceID, &events.StartRequested{}, meta, r.Now())
	if err != nil {
		return err
	}
	if _, err = r.Log.Append(ctx, e, seq); errors.Is(err, ErrConflict) {
		return nil
	}
	return err
}

// Open is a request that has been open too long.
type Open struct {
	Workspace events.Workspace
	// Expired: past the deadline, record a failure; otherwise carry the
	// request out again.
	Expired bool
}

// Overdue lists the workspaces whose request has been open longer than
// redrive (carry it out again) or, for starts and stops, than deadline
// (give up and record why). Pure, like Diff.
func Overdue(wss []events.Workspace, now time.Time, redrive, deadline time.Duration) []Open {
	var out []Open
	for _, ws := range wss {
		// A preparation is no open request: nothing waits for it.
		if a := Plan(ws); a == ActionNone || a == ActionPrepare || ws.StatusSince.IsZero() {
			continue
		}
		age := now.Sub(ws.StatusSince)
		timed := ws.Status == events.StatusStarting || ws.Status == events.StatusStopping
		switch {
		case timed && deadline > 0 && age > deadline:
			out = append(out, Open{Workspace: ws, Expired: true})
		case redrive > 0 && age > redrive:
			out = append(out, Open{Workspace: ws})
		}
	}
	return out
}

// settle carries out an overdue request again, or records that it expired.
// A request a handler is working on right now is left alone.
func (r *Reconciler) settle(ctx context.Context, o Open) error {
	ws := o.Workspace
	if !o.Expired {
		unlock, ok := r.Driver.TryExclusive(ws.ID)
		if !ok {
			return nil
		}
		unlock() // nobody on it: carry it out (Handle takes the lock again)
		if r.redriving == nil {
			r.redriving = make(chan struct{}, 4)
		}
		select {
		case r.redriving <- struct{}{}:
		default:
			return nil // enough in flight; the next sweep comes back to it
		}
		r.Logger.Warn("carrying out a request nobody worked on", "workspace", ws.Name, "status", ws.Status, "since", ws.StatusSince)
		go func() {
			defer func() { <-r.redriving }()
			if err := r.Driver.Handle(ctx, ws.ID, 0, false); err != nil && ctx.Err() == nil {
				r.Logger.Warn("open request still not carried out", "workspace", ws.Name, "err", err)
			}
		}()
		return nil
	}
	return r.exclusive(ws.ID, ws.Version, func() error {
		msg := fmt.Sprintf("the workspace stayed %s for %s, longer than the %s deadline; start or stop it again", ws.Status, r.Now().Sub(ws.StatusSince).Round(time.Second), r.Deadline)
		e, err := events.New(ws.ID, &events.Failed{Code: "deadline_exceeded", Message: msg, Retryable: true},
			ws.Cause.Follow(events.Meta{Source: source, Actor: "service:provisioner", Reason: "reconciler: " + msg}), r.Now())
		if err != nil {
			return err
		}
		if _, err := r.Log.Append(ctx, e, ws.Version); err != nil && !errors.Is(err, ErrConflict) {
			return err
		}
		r.Logger.Warn("open request expired", "workspace", ws.Name, "status", ws.Status)
		return nil
	})
}
