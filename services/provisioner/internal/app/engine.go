package app

import (
	"context"
	"log/slog"
	"time"
)

// EngineBoard is where provisioners report whether they reach their engine
// (enginestatus.Board); the API refuses starts while none does.
type EngineBoard interface {
	Publish(ctx context.Context, instance string, engineErr error, now time.Time) error
}

// Pinger answers whether the engine is reachable.
type Pinger interface {
	Ping(ctx context.Context) error
}

// DefaultPingTimeout bounds one engine ping when PingTimeout is 0.
const DefaultPingTimeout = 3 * time.Second

// EngineReporter tells the API, through the board, whether this provisioner
// reaches its engine.
type EngineReporter struct {
	Board  EngineBoard
	Engine Pinger
	// Instance names this process on the board (one report each).
	Instance    string
	Logger      *slog.Logger
	Now         func() time.Time
	PingTimeout time.Duration
}

// Report pings the engine once and publishes the outcome. A failed publish
// is logged: the report expires and the next tick tries again.
func (r *EngineReporter) Report(ctx context.Context) {
	timeout := r.PingTimeout
	if timeout <= 0 {
		timeout = DefaultPingTimeout
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	engineErr := r.Engine.Ping(pctx)
	cancel()
	if err := r.Board.Publish(ctx, r.Instance, engineErr, r.Now()); err != nil && ctx.Err() == nil {
		r.Logger.Warn("engine status not published", "err", err)
	}
}

// Run reports at once, then on every tick, until ctx ends. Ticks must come
// well within the board's TTL (enginestatus.TTL / 4 in production).
func (r *EngineReporter) Run(ctx context.Context, ticks <-chan time.Time) error {
	for {
		r.Report(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
		}
	}
}
