package docker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	dockerevents "github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// resubscribeDelay is the wait before watching again after the engine's
// event stream ended (the engine went away or restarted).
const resubscribeDelay = 2 * time.Second

// WatchExits sends on kick (without blocking: one pending kick is enough)
// whenever a workspace container dies, is OOM-killed or is destroyed, so
// the reconciler sweeps at once instead of at its next tick. It
// resubscribes when the engine goes away and comes back, and returns when
// ctx ends.
func (r *Runtime) WatchExits(ctx context.Context, log *slog.Logger, kick chan<- struct{}) {
	f := filters.NewArgs(filters.Arg("type", "container"), filters.Arg("label", LabelID),
		filters.Arg("event", "die"), filters.Arg("event", "oom"), filters.Arg("event", "destroy"))
	for ctx.Err() == nil {
		msgs, errs := r.Events(ctx, f)
		if err := forward(ctx, log, msgs, errs, kick); err != nil {
			log.Warn("docker event stream ended; resubscribing", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(resubscribeDelay):
		}
	}
}

var errStreamEnded = errors.New("event stream closed by the engine")

// forward turns messages into kicks until the stream fails (its error) or
// ctx ends (nil).
func forward(ctx context.Context, log *slog.Logger, msgs <-chan dockerevents.Message, errs <-chan error, kick chan<- struct{}) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-msgs:
			log.Debug("docker event", "action", m.Action, "workspace", m.Actor.Attributes[LabelID])
			select {
			case kick <- struct{}{}:
			default:
			}
		case err := <-errs:
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				err = errStreamEnded
			}
			return err
		}
	}
}
