package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/eventlog"
)

// Observed is a Berth-labelled container as the engine reports it.
type Observed struct {
	ContainerID string
	WorkspaceID string
	Running     bool
	Created     time.Time
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

// Fix is one repair the reconciler will make.
type Fix struct {
	Kind        FixKind
	WorkspaceID string
	ContainerID string
	Detail      string
}

// Diff compares the log's view with the engine's and lists the repairs.
// It is pure: the sweep feeds it a snapshot and a clock.
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
			fixes = append(fixes, Fix{Kind: FixRecordGone, WorkspaceID: ws.ID, Detail: "container_gone"})
		case ws.Status == events.StatusRunning && !c.Running:
			fixes = append(fixes, Fix{Kind: FixRecordGone, WorkspaceID: ws.ID, ContainerID: c.ContainerID, Detail: "container_exited"})
		case has && c.Running && (ws.Status == events.StatusStopped || ws.Status == events.StatusCreated ||
			ws.Status == events.StatusArchived || ws.Status == events.StatusError):
			fixes = append(fixes, Fix{Kind: FixStopStray, WorkspaceID: ws.ID, ContainerID: c.ContainerID})
		}
	}
	for _, o := range observed {
		ws, ok := known[o.WorkspaceID]
		if (!ok || ws.Status == events.StatusDeleted) && now.Sub(o.Created) > orphanGrace {
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
}

// Reconciler repairs drift between the log and the engine.
type Reconciler struct {
	Log         Log
	Projection  Workspaces
	Engine      Inventory
	Logger      *slog.Logger
	OrphanGrace time.Duration
	// Restart re-requests a start for a workspace whose container vanished
	// or died; otherwise it stays failed until someone starts it.
	Restart bool
	Now     func() time.Time
}

// Sweep runs one comparison and applies its repairs. A failing repair is
// logged and does not stop the others.
func (r *Reconciler) Sweep(ctx context.Context) error {
	observed, err := r.Engine.List(ctx)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	for _, f := range Diff(r.Projection.Workspaces(nil), observed, r.Now(), r.OrphanGrace) {
		if err := r.apply(ctx, f); err != nil {
			r.Logger.Warn("reconcile repair failed", "workspace", f.WorkspaceID, "kind", f.Kind, "err", err)
		}
	}
	return nil
}

func (r *Reconciler) apply(ctx context.Context, f Fix) error {
	switch f.Kind {
	case FixRemoveOrphan:
		r.Logger.Warn("removing orphan workspace container", "container", f.ContainerID, "workspace", f.WorkspaceID)
		return r.Engine.RemoveContainer(ctx, f.ContainerID)
	case FixStopStray:
		r.Logger.Warn("stopping container the log says is not running", "workspace", f.WorkspaceID)
		_, err := r.Engine.EnsureStopped(ctx, f.WorkspaceID)
		return err
	case FixRecordGone:
		return r.recordGone(ctx, f)
	}
	return nil
}

// recordGone appends the observation (and, by policy, a restart request)
// against the log's own current state, so a repair never overrides a newer
// request.
func (r *Reconciler) recordGone(ctx context.Context, f Fix) error {
	evs, err := r.Log.Read(ctx, f.WorkspaceID)
	if err != nil {
		return err
	}
	ws, err := events.Fold(evs)
	if err != nil || ws.Status != events.StatusRunning {
		return err // moved on since the snapshot: nothing to repair
	}
	msg := "the workspace container was removed outside Berth"
	if f.Detail == "container_exited" {
		msg = "the workspace container stopped outside Berth (crash, OOM or docker stop)"
	}
	meta := events.Meta{Source: source, Actor: "service:provisioner", Reason: "reconciler: " + msg}
	e, err := events.New(ws.ID, &events.Failed{Code: f.Detail, Message: msg, Retryable: true}, meta, r.Now())
	if err != nil {
		return err
	}
	seq, err := r.Log.Append(ctx, e, ws.Version)
	if errors.Is(err, eventlog.ErrConflict) {
		return nil
	}
	if err != nil || !r.Restart {
		return err
	}
	meta.Reason = "reconciler: restart policy"
	e, err = events.New(ws.ID, &events.StartRequested{}, meta, r.Now())
	if err != nil {
		return err
	}
	if _, err = r.Log.Append(ctx, e, seq); errors.Is(err, eventlog.ErrConflict) {
		return nil
	}
	return err
}
