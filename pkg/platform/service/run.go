// Package service holds what every long-running Berth process needs around
// its own logic: a run group with graceful, bounded shutdown, and the
// health/readiness/metrics HTTP endpoints.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Actor is one long-running part of a service (HTTP server, consumer,
// ticker). Run blocks until ctx ends or the actor fails.
type Actor struct {
	Name string
	Run  func(ctx context.Context) error
}

// Run starts every actor and waits. The first actor to return (or ctx
// ending, e.g. on SIGTERM) cancels the others; they get grace to finish,
// after which Run returns anyway so a stuck actor cannot hang shutdown.
func Run(ctx context.Context, log *slog.Logger, grace time.Duration, actors ...Actor) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(actors))
	for _, a := range actors {
		go func() {
			err := a.Run(ctx)
			results <- result{a.Name, err}
		}()
	}
	var first error
	select {
	case r := <-results:
		if r.err != nil && !errors.Is(r.err, context.Canceled) {
			first = fmt.Errorf("%s: %w", r.name, r.err)
			log.Error("actor failed, shutting down", "actor", r.name, "err", r.err)
		} else {
			log.Info("actor stopped, shutting down", "actor", r.name)
		}
		cancel()
		actors = actors[1:]
	case <-ctx.Done():
		log.Info("shutting down")
	}
	deadline := time.After(grace)
	for range actors {
		select {
		case r := <-results:
			if r.err != nil && !errors.Is(r.err, context.Canceled) {
				log.Warn("actor stopped with error", "actor", r.name, "err", r.err)
			}
		case <-deadline:
			return errors.Join(first, fmt.Errorf("shutdown exceeded %s", grace))
		}
	}
	return first
}

// HTTPServer runs srv on ln until ctx ends, then shuts it down gracefully.
func HTTPServer(name string, srv *http.Server, ln net.Listener, grace time.Duration) Actor {
	return Actor{Name: name, Run: func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		select {
		case err := <-errc:
			return fmt.Errorf("serve %s: %w", ln.Addr(), err)
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			return fmt.Errorf("shutdown %s: %w", name, err)
		}
		return nil
	}}
}

// Supervised restarts a after it fails, with a doubling backoff (reset once
// a run lasted a minute), until ctx ends: a bus or engine outage is waited
// out instead of taking the whole service down. A nil return means the
// actor is done and ends the service as before.
func Supervised(log *slog.Logger, a Actor) Actor {
	return Actor{Name: a.Name, Run: func(ctx context.Context) error {
		const first, most = 200 * time.Millisecond, 30 * time.Second
		wait := first
		for {
			began := time.Now()
			err := a.Run(ctx)
			if err == nil || ctx.Err() != nil {
				return err
			}
			if time.Since(began) > time.Minute {
				wait = first
			}
			log.Error("actor failed; restarting", "actor", a.Name, "err", err, "retry_in", wait)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			wait = min(wait*2, most)
		}
	}}
}

// Once wraps a readiness callback (tests pass one to a service's run) so a
// supervised actor that starts again reports ready only the first time.
func Once(f func(addr string)) func(addr string) {
	if f == nil {
		return func(string) {}
	}
	var once sync.Once
	return func(addr string) { once.Do(func() { f(addr) }) }
}
