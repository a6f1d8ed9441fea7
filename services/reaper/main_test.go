package main

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
)

// TestRunServesHealthAndStops: the composition root replays the (empty)
// log of a real NATS, answers /readyz, sweeps, and returns on shutdown.
func TestRunServesHealthAndStops(t *testing.T) {
	srv := natstest.Server(t)
	// The API owns the stream; the reaper only opens it.
	if _, err := eventlog.Open(context.Background(), natstest.Conn(t, srv), eventlog.Options{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--http-addr", "127.0.0.1:0", "--nats-url", srv.ClientURL(), "--sweep-interval", "10ms", "--log-level", "warn"},
			io.Discard, func(addr string) { ready <- addr })
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("reaper exited: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("reaper not ready")
	}
	res, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("readyz %d", res.StatusCode)
	}
	time.Sleep(50 * time.Millisecond) // a few sweeps
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("reaper did not stop")
	}
}
