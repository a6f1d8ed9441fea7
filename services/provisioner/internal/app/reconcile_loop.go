package app

import (
	"context"
	"log/slog"
	"time"
)

// Sweeper runs one reconciliation (the Reconciler).
type Sweeper interface {
	Sweep(ctx context.Context) error
}

// DefaultSettle is the wait after a kick when Settle is 0.
const DefaultSettle = 200 * time.Millisecond

// ReconcileLoop decides when the reconciler sweeps: at start, on every
// tick, and shortly after a kick (the engine reported a workspace
// container dying or being destroyed).
type ReconcileLoop struct {
	Reconciler Sweeper
	Logger     *slog.Logger
	// Settle is the wait between a kick and its sweep, so a burst of
	// engine events (a container dies, then is removed) makes one sweep.
	Settle time.Duration
	// After is the clock of that wait (nil: time.After); tests inject one.
	After func(time.Duration) <-chan time.Time
}

// Run sweeps until ctx ends. A failed sweep is logged; the next tick or
// kick tries again.
func (l *ReconcileLoop) Run(ctx context.Context, ticks <-chan time.Time, kicks <-chan struct{}) error {
	l.sweep(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
		case <-kicks:
			select {
			case <-ctx.Done():
				return nil
			case <-l.after(l.settle()):
			}
		}
		l.sweep(ctx)
	}
}

func (l *ReconcileLoop) sweep(ctx context.Context) {
	if err := l.Reconciler.Sweep(ctx); err != nil && ctx.Err() == nil {
		l.Logger.Warn("reconcile sweep failed", "err", err)
	}
}

func (l *ReconcileLoop) settle() time.Duration {
	if l.Settle > 0 {
		return l.Settle
	}
	return DefaultSettle
}

func (l *ReconcileLoop) after(d time.Duration) <-chan time.Time {
	if l.After != nil {
		return l.After(d)
	}
	return time.After(d)
}
