package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/berthdev/berth/pkg/events"
)

// HeartbeatFiles reads the modification time of a file in a running
// container.
type HeartbeatFiles interface {
	FileModTime(ctx context.Context, containerID, path string) (time.Time, bool, error)
}

// ActivityRecorder records workspace activity (the activity bucket).
type ActivityRecorder interface {
	Record(ctx context.Context, id string, at time.Time) error
}

// Heartbeats turns a heartbeat file inside each running workspace (the one
// code-server keeps while someone uses it, or one any tool touches) into
// activity, so work the reaper cannot see through Traefik still counts.
type Heartbeats struct {
	Projection Workspaces
	Files      HeartbeatFiles
	Activity   ActivityRecorder
	Path       string
	Logger     *slog.Logger
	Now        func() time.Time
	seen       map[string]time.Time
}

// Poll checks every running workspace once. A missing file is not an
// error (the IDE may not keep one); a time in the future is taken as now,
// so a touched-ahead file cannot keep a workspace alive forever.
func (h *Heartbeats) Poll(ctx context.Context) {
	if h.seen == nil {
		h.seen = map[string]time.Time{}
	}
	now := h.Now()
	running := h.Projection.Workspaces(func(ws events.Workspace) bool {
		return ws.Status == events.StatusRunning && ws.Endpoint != nil
	})
	live := make(map[string]bool, len(running))
	for _, ws := range running {
		live[ws.ID] = true
		at, ok, err := h.Files.FileModTime(ctx, ws.Endpoint.ContainerID, h.Path)
		if err != nil {
			h.Logger.Debug("heartbeat file not readable", "workspace", ws.Name, "err", err)
			continue
		}
		if !ok || !at.After(h.seen[ws.ID]) {
			continue
		}
		if at.After(now) {
			at = now
		}
		if err := h.Activity.Record(ctx, ws.ID, at); err != nil {
			h.Logger.Warn("heartbeat not recorded", "workspace", ws.Name, "err", err)
			continue
		}
		h.seen[ws.ID] = at
	}
	for id := range h.seen {
		if !live[id] {
			delete(h.seen, id)
		}
	}
}

// Run polls at once, then on every tick, until ctx ends.
func (h *Heartbeats) Run(ctx context.Context, ticks <-chan time.Time) error {
	for {
		h.Poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
		}
	}
}
