package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/wsurl"
)

// HeartbeatFiles reads the modification time of a file in a running
// container.
type HeartbeatFiles interface {
	FileModTime(ctx context.Context, containerID, path string) (time.Time, bool, error)
}

// ActivityProbe reads a time from an IDE's JSON status endpoint (e.g.
// code-server's /healthz lastHeartbeat, Jupyter's /api/status
// last_activity).
type ActivityProbe interface {
	JSONTime(ctx context.Context, ip string, port int, path, field string) (time.Time, bool, error)
}

// BusyProbe asks an app whether it is working (e.g. Jupyter's
// /api/kernels: a kernel whose execution_state is busy).
type BusyProbe interface {
	JSONHas(ctx context.Context, ip string, port int, path, field, value string) (bool, error)
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
	Probe      ActivityProbe
	// Busy answers profiles' busy probes (nil: none is asked).
	Busy     BusyProbe
	Activity ActivityRecorder
	// Path is the heartbeat file of images whose profile names no
	// activity; Images looks profiles up (nil: every image uses Path).
	Path   string
	Images func(ref string) (events.CatalogImage, bool)
	// Routing decides the base path a profile's {base} stands for.
	Routing wsurl.Mode
	Logger  *slog.Logger
	Now     func() time.Time
	seen    map[string]time.Time
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
		prof := h.profile(ws)
		at, ok, err := h.read(ctx, ws, prof)
		if err != nil {
			h.Logger.Debug("heartbeat file not readable", "workspace", ws.Name, "err", err)
		}
		// Working without input or output (a long cell) is use, now, even
		// when a time ahead of now was seen before.
		busy := h.busy(ctx, ws, prof)
		if busy {
			at, ok = now, true
		}
		if !ok || (!busy && !at.After(h.seen[ws.ID])) {
			continue
		}
		// The raw time is what was seen (a time ahead of now, recorded as
		// now, is then not seen again on every poll); now is what counts.
		recorded := at
		if at.After(now) {
			recorded = now
		}
		if err := h.Activity.Record(ctx, ws.ID, recorded); err != nil {
			h.Logger.Warn("heartbeat not recorded", "workspace", ws.Name, "err", err)
			continue
		}
		if at.After(h.seen[ws.ID]) {
			h.seen[ws.ID] = at
		}
	}
	for id := range h.seen {
		if !live[id] {
			delete(h.seen, id)
		}
	}
}

// read asks ws's IDE when it was last used, the way its image's profile
// says: a heartbeat file, a JSON endpoint, or not at all (traffic only:
// ok is false).
func (h *Heartbeats) read(ctx context.Context, ws events.Workspace, prof events.ImageProfile) (time.Time, bool, error) {
	if urlPath, field, ok := prof.HTTPActivity(BasePath(h.Routing, ws.Name)); ok {
		if h.Probe == nil {
			return time.Time{}, false, nil
		}
		return h.Probe.JSONTime(ctx, ws.Endpoint.IP, ws.Endpoint.Port, urlPath, field)
	}
	if f := prof.ActivityFile(h.Path); f != "" {
		return h.Files.FileModTime(ctx, ws.Endpoint.ContainerID, f)
	}
	return time.Time{}, false, nil
}

// profile is ws's image's profile (the zero one when unknown).
func (h *Heartbeats) profile(ws events.Workspace) events.ImageProfile {
	if h.Images == nil {
		return events.ImageProfile{}
	}
	img, _ := h.Images(ws.Image)
	return img.Profile
}

// busy asks ws's app, when its profile has a busy probe, whether it is
// working. An app that does not answer is not busy.
func (h *Heartbeats) busy(ctx context.Context, ws events.Workspace, prof events.ImageProfile) bool {
	urlPath, field, value, ok := prof.HTTPBusy(BasePath(h.Routing, ws.Name))
	if !ok || h.Busy == nil {
		return false
	}
	busy, err := h.Busy.JSONHas(ctx, ws.Endpoint.IP, ws.Endpoint.Port, urlPath, field, value)
	if err != nil {
		h.Logger.Debug("busy probe not answered", "workspace", ws.Name, "err", err)
	}
	return busy
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
