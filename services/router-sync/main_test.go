package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
)

// TestSurvivesBusOutage: router-sync removes the temp files of a write it
// was killed in, and when NATS goes away and comes back it keeps routing
// instead of exiting (it used to exit on the first bus error, leaving the
// routes file stale).
func TestSurvivesBusOutage(t *testing.T) {
	store := t.TempDir()
	srv := natstest.ServerAt(t, store)
	port := srv.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	stale := filepath.Join(dir, ".berth-workspaces.yml.4242.tmp")
	if err := os.WriteFile(stale, []byte("half a file"), 0o644); err != nil {
		t.Fatal(err)
	}

	// The API owns the stream; router-sync only reads it.
	if _, err := eventlog.Open(context.Background(), natstest.Conn(t, srv), eventlog.Options{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--http-addr", "127.0.0.1:0", "--nats-url", srv.ClientURL(), "--dynamic-dir", dir, "--log-level", "error"},
			io.Discard, func(a string) { ready <- a })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("router-sync stopped with %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("router-sync exited: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("router-sync not ready")
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale temp file still there: %v", err)
	}

	srv.Shutdown()
	srv.WaitForShutdown()
	time.Sleep(time.Second) // the outage: reconnects fail meanwhile
	select {
	case err := <-done:
		t.Fatalf("router-sync exited during the outage: %v", err)
	default:
	}
	srv2, err := natsbus.StartEmbedded(natsbus.EmbeddedOptions{Listen: "127.0.0.1:" + strconv.Itoa(port), StoreDir: store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv2.Shutdown(); srv2.WaitForShutdown() })

	l, err := eventlog.Open(context.Background(), natstest.Conn(t, srv2.Server), eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	var version uint64
	for _, p := range []events.Payload{
		&events.Created{Name: "after-outage", Owner: "alice", Image: "img", Projects: []string{}},
		&events.StartRequested{},
		&events.Running{ContainerID: "c", Host: "berth-after-outage", IP: "172.30.0.9", Port: 8080},
	} {
		e, err := events.New(id, p, events.Meta{Source: "test", Actor: "user:alice"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if version, err = l.Append(context.Background(), e, version); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "berth-workspaces.yml"))
		if strings.Contains(string(b), "172.30.0.9") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("route of a workspace started after the outage never written; file:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
