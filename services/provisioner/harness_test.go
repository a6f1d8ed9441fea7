package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/dockertest"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
	"github.com/berthdev/berth/services/provisioner/internal/docker"
)

// world is one test's setup: the real Docker Engine, a real in-process
// NATS, the log, a private workspace network and a projects root.
type world struct {
	t       testing.TB
	cli     *client.Client
	nats    *server.Server
	natsURL string // every node's, comma-separated, on a cluster
	log     *eventlog.Log
	network string
	// installation scopes this test's containers: tests running beside a
	// live stack (or each other) never touch each other's.
	installation string
	projects     string
	ids          []string
}

func newWorld(t testing.TB) *world {
	t.Helper()
	cli := dockertest.Client(t)
	dockertest.EnsureImages(t, cli)
	srv := natstest.Server(t)
	l, err := eventlog.Open(context.Background(), natstest.Conn(t, srv), eventlog.Options{})
	require.NoError(t, err)
	return newWorldOn(t, cli, srv, srv.ClientURL(), l)
}

// newWorldOn is newWorld on a bus the test made (srv: its first node).
func newWorldOn(t testing.TB, cli *client.Client, srv *server.Server, natsURL string, l *eventlog.Log) *world {
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	w := &world{t: t, cli: cli, nats: srv, natsURL: natsURL, log: l, network: "berth-test-" + hex.EncodeToString(suffix), installation: "test-" + hex.EncodeToString(suffix), projects: t.TempDir()}
	// The provisioner creates only catalog images: put the demo image there,
	// as an admin would.
	w.catalog(dockertest.DemoImage)
	require.NoError(t, os.MkdirAll(filepath.Join(w.projects, "course-101"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(w.projects, "course-101", "README.md"), []byte("welcome"), 0o644))
	t.Cleanup(w.cleanup)
	return w
}

func (w *world) cleanup() {
	ctx := context.Background()
	for _, id := range w.ids {
		list, _ := w.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelID+"="+id))})
		for _, c := range list {
			_ = w.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
		}
		_ = w.cli.VolumeRemove(ctx, docker.VolumeName(id), true)
	}
	_ = w.cli.NetworkRemove(ctx, w.network)
}

// startProvisioner runs the provisioner through its composition root.
func (w *world) startProvisioner(extra ...string) (addr string, stop func()) {
	w.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	args := append([]string{"--http-addr", "127.0.0.1:0", "--nats-url", w.natsURL, "--network", w.network,
		"--projects-root", w.projects, "--reconcile-interval", "1s", "--orphan-grace", "1h", "--log-level", "warn",
		"--health-timeout", "20s", "--installation", w.installation}, extra...)
	out := &lockedBuffer{}
	w.t.Cleanup(func() {
		if w.t.Failed() {
			w.t.Logf("--- provisioner log (warnings and errors) ---\n%s", out.String())
		}
	})
	go func() { done <- run(ctx, args, out, func(a string) { ready <- a }) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			require.NoError(w.t, err)
		case <-time.After(30 * time.Second):
			w.t.Fatal("provisioner did not stop")
		}
	}
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		w.t.Fatalf("provisioner exited: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		w.t.Fatal("provisioner not ready")
	}
	w.t.Cleanup(stop)
	return addr, stop
}

// projection follows the log for the rest of the test, as a provisioner
// replica's own projection does.
func (w *world) projection() *events.Projection {
	w.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w.t.Cleanup(cancel)
	proj := events.NewProjection()
	require.NoError(w.t, w.log.Replay(ctx, slog.New(slog.DiscardHandler), proj))
	return proj
}

// catalog puts an image in the catalog (again: the entry is replaced), as
// an admin would.
func (w *world) catalog(ref string, caps ...string) {
	w.t.Helper()
	evs, err := w.log.Read(context.Background(), events.CatalogSubject)
	require.NoError(w.t, err)
	var version uint64
	if len(evs) > 0 {
		version = evs[len(evs)-1].Sequence
	}
	if caps == nil {
		caps = []string{}
	}
	e, err := events.New(events.CatalogSubject, &events.ImageAdded{Ref: ref, CapAdd: caps}, events.Meta{Source: "test", Actor: "user:admin"}, time.Now())
	require.NoError(w.t, err)
	_, err = w.log.Append(context.Background(), e, version)
	require.NoError(w.t, err)
}

// runtime is a runtime of this test's installation.
func (w *world) runtime() *docker.Runtime {
	return docker.New(w.cli, docker.Options{Network: w.network}).Scoped(w.installation)
}

func (w *world) state(id string) events.Workspace {
	w.t.Helper()
	evs, err := w.log.Read(context.Background(), id)
	require.NoError(w.t, err)
	ws, err := events.Fold(evs)
	require.NoError(w.t, err)
	return ws
}

// request appends an intent as the API would, against the current version.
func (w *world) request(id string, p events.Payload) {
	w.t.Helper()
	ws := w.state(id)
	e, err := events.New(id, p, events.Meta{Source: "test", Actor: "user:test", Reason: "test"}, time.Now())
	require.NoError(w.t, err)
	_, err = w.log.Append(context.Background(), e, ws.Version)
	require.NoError(w.t, err)
}

// create defines a workspace (and asks it to start, unless told not to).
func (w *world) create(name, image string, start bool, projects ...string) string {
	w.t.Helper()
	id := uuid.NewString()
	w.ids = append(w.ids, id)
	if projects == nil {
		projects = []string{}
	}
	e, err := events.New(id, &events.Created{Name: name, Image: image, Owner: "alice", Projects: projects,
		Resources: events.Resources{MemoryBytes: 256 << 20, MilliCPUs: 500, Pids: 128}}, events.Meta{Source: "test", Actor: "user:test"}, time.Now())
	require.NoError(w.t, err)
	_, err = w.log.Append(context.Background(), e, 0)
	require.NoError(w.t, err)
	if start {
		w.request(id, &events.StartRequested{})
	}
	return id
}

func (w *world) waitStatus(id string, want events.Status, within time.Duration) events.Workspace {
	w.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ws := w.state(id)
		if ws.Status == want {
			return ws
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("workspace %s: status %s (reason %q, failure %+v), want %s after %s", ws.Name, ws.Status, ws.Reason, ws.Failure, want, within)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (w *world) containers(id string) []container.Summary {
	w.t.Helper()
	list, err := w.cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelID+"="+id))})
	require.NoError(w.t, err)
	return list
}

// lockedBuffer collects a provisioner's log for a failed test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 {
		return len(p), nil // enough to read
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
