package app

import (
	"context"
	"log/slog"

	"github.com/berthdev/berth/pkg/events"
)

// ResumePending handles, once at start-up, every workspace whose request is
// still open, each in its own goroutine, and returns how many it started.
// After a crash the request's message comes back only when its ack wait
// expires; handling is idempotent, so doing it now as well is safe and
// makes recovery immediate.
func ResumePending(ctx context.Context, logger *slog.Logger, wss Workspaces, d Driver) int {
	open := wss.Workspaces(func(ws events.Workspace) bool { return Plan(ws) != ActionNone })
	for _, ws := range open {
		go func() {
			if err := d.Handle(ctx, ws.ID, 0, false); err != nil && ctx.Err() == nil {
				logger.Warn("resuming open request failed; the consumer will retry", "workspace", ws.Name, "err", err)
			}
		}()
	}
	return len(open)
}
