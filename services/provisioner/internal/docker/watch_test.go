package docker

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	dockerevents "github.com/docker/docker/api/types/events"
)

// TestForwardKicks: engine events become kicks that never block (one
// pending is enough); the stream's error ends forwarding with that error,
// a shutdown with none.
func TestForwardKicks(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	msgs, errs, kick := make(chan dockerevents.Message), make(chan error, 1), make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() { done <- forward(context.Background(), quiet, msgs, errs, kick) }()
	for range 3 {
		msgs <- dockerevents.Message{Action: "die"} // does not block on the full kick channel
	}
	if len(kick) != 1 {
		t.Fatalf("%d kicks pending, want 1", len(kick))
	}
	lost := errors.New("engine restarted")
	errs <- lost
	select {
	case err := <-done:
		if !errors.Is(err, lost) {
			t.Fatalf("forward ended with %v, want the stream's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("forward did not end with the stream")
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- forward(ctx, quiet, msgs, make(chan error), kick) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("forward ended with %v on shutdown, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("forward did not end on shutdown")
	}
}
