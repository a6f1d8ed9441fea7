package app_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/wsurl"
	"github.com/berthdev/berth/services/router-sync/internal/app"
	"github.com/berthdev/berth/services/router-sync/internal/render"
)

// fakeLog replays what it holds, then hands the test the callback to
// deliver more events, as the follower does.
type fakeLog struct {
	backlog []events.Envelope
	applied chan func(events.Envelope)
}

func (f *fakeLog) FollowTraced(ctx context.Context, _ *slog.Logger, apply func(context.Context, events.Envelope)) (<-chan struct{}, error) {
	for _, e := range f.backlog {
		apply(ctx, e)
	}
	caughtUp := make(chan struct{})
	close(caughtUp)
	f.applied <- func(e events.Envelope) { apply(ctx, e) }
	return caughtUp, nil
}

// fakeWriter keeps the last content like configdir.Writer (identical
// content is not rewritten) and fails the next fail writes.
type fakeWriter struct {
	mu     sync.Mutex
	last   []byte
	writes int
	fail   int
	calls  chan string // content of every call, written or not
}

func (w *fakeWriter) Write(content []byte) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	defer func() { w.calls <- string(content) }()
	if w.fail > 0 {
		w.fail--
		return false, errors.New("disk full")
	}
	if w.last != nil && bytes.Equal(w.last, content) {
		return false, nil
	}
	w.last, w.writes = bytes.Clone(content), w.writes+1
	return true, nil
}

// history is the events of a workspace up to running at ip, with log
// sequences from seq on.
func history(t *testing.T, id, name, ip string, seq uint64) []events.Envelope {
	t.Helper()
	var out []events.Envelope
	for _, p := range []events.Payload{
		&events.Created{Name: name, Owner: "alice", Image: "img", Projects: []string{}},
		&events.StartRequested{},
		&events.Running{ContainerID: "c-" + name, Host: "berth-" + name, IP: ip, Port: 8080},
	} {
		e, err := events.New(id, p, events.Meta{Source: "test", Actor: "user:alice"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		e.Sequence = seq
		seq++
		out = append(out, e)
	}
	return out
}

type world struct {
	t       *testing.T
	log     *fakeLog
	writer  *fakeWriter
	retry   chan time.Time
	apply   func(events.Envelope)
	synced  chan struct{}
	stopped chan error
}

// start runs a Syncer over a log holding backlog until the test ends.
func start(t *testing.T, backlog []events.Envelope, fail int) *world {
	w := &world{t: t, log: &fakeLog{backlog: backlog, applied: make(chan func(events.Envelope), 1)},
		writer: &fakeWriter{fail: fail, calls: make(chan string, 16)}, retry: make(chan time.Time),
		synced: make(chan struct{}), stopped: make(chan error, 1)}
	s := &app.Syncer{Log: w.log, Projection: events.NewProjection(), Writer: w.writer, Logger: slog.New(slog.DiscardHandler),
		Render:     render.Options{Mode: wsurl.ModePath, EntryPoint: "web", AuthURL: "http://api/forward", Backend: render.BackendIP},
		RetryDelay: time.Hour, After: func(time.Duration) <-chan time.Time { return w.retry }}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { w.stopped <- s.Run(ctx, func() { close(w.synced) }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-w.stopped; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	w.apply = <-w.log.applied
	return w
}

// call waits for the next write attempt and returns its content.
func (w *world) call() string {
	w.t.Helper()
	select {
	case c := <-w.writer.calls:
		return c
	case <-time.After(5 * time.Second):
		w.t.Fatal("no write")
		return ""
	}
}

func (w *world) waitSynced() {
	w.t.Helper()
	select {
	case <-w.synced:
	case <-time.After(5 * time.Second):
		w.t.Fatal("never reported synced")
	}
}

// until waits for a write attempt whose content holds want.
func (w *world) until(want string) {
	w.t.Helper()
	for !strings.Contains(w.call(), want) {
	}
}

func (w *world) writes() int { w.writer.mu.Lock(); defer w.writer.mu.Unlock(); return w.writer.writes }

const one, two = "11111111-0000-4000-8000-000000000000", "22222222-0000-4000-8000-000000000000"

// TestSyncsAfterReplayThenOnChange: the routes are written once the log is
// replayed (then synced is reported), and again when a change makes
// another workspace routable.
func TestSyncsAfterReplayThenOnChange(t *testing.T) {
	w := start(t, history(t, one, "one", "10.0.0.2", 1), 0)
	if c := w.call(); !strings.Contains(c, "10.0.0.2") {
		t.Fatalf("first write lacks the replayed workspace:\n%s", c)
	}
	w.waitSynced()
	for _, e := range history(t, two, "two", "10.0.0.3", 4) {
		w.apply(e)
	}
	w.until("10.0.0.3")
	if got := w.writes(); got != 2 {
		t.Fatalf("%d writes, want 2", got)
	}
}

// TestUnchangedRoutesNotRewritten: an event that changes the projection but
// not the routes (a workspace created, not running) renders the same
// content, which the writer does not write again.
func TestUnchangedRoutesNotRewritten(t *testing.T) {
	w := start(t, history(t, one, "one", "10.0.0.2", 1), 0)
	first := w.call()
	w.waitSynced()
	w.apply(history(t, two, "two", "10.0.0.3", 4)[0])
	if again := w.call(); again != first {
		t.Fatalf("routes changed by a workspace that is not running:\n%s", again)
	}
	if got := w.writes(); got != 1 {
		t.Fatalf("%d writes, want 1", got)
	}
}

// TestFailedWriteIsRetried: a write that fails after a change is tried
// again once the retry delay passes, with no further change.
func TestFailedWriteIsRetried(t *testing.T) {
	w := start(t, history(t, one, "one", "10.0.0.2", 1), 0)
	w.call()
	w.waitSynced()
	w.writer.mu.Lock()
	w.writer.fail = 1
	w.writer.mu.Unlock()
	stop, err := events.New(one, &events.StopRequested{}, events.Meta{Source: "test", Actor: "user:alice"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	stop.Sequence = 4
	w.apply(stop) // the route must go
	if c := w.call(); strings.Contains(c, "10.0.0.2") || w.writes() != 1 {
		t.Fatalf("attempt after the stop (it fails): %d writes, content:\n%s", w.writes(), c)
	}
	w.retry <- time.Now() // taken only once the loop waits for the retry
	if c := w.call(); strings.Contains(c, "10.0.0.2") {
		t.Fatalf("retried write still routes the stopping workspace:\n%s", c)
	}
	if got := w.writes(); got != 2 {
		t.Fatalf("%d writes, want the first one and the retried one", got)
	}
}

// TestFirstWriteFailureIsReturned: without routes written the service is
// not ready; Run gives up so the supervisor restarts it.
func TestFirstWriteFailureIsReturned(t *testing.T) {
	l := &fakeLog{applied: make(chan func(events.Envelope), 1)}
	s := &app.Syncer{Log: l, Projection: events.NewProjection(), Writer: &fakeWriter{fail: 1, calls: make(chan string, 1)},
		Logger: slog.New(slog.DiscardHandler)}
	err := s.Run(context.Background(), func() { t.Error("synced reported without routes") })
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Run: %v, want the write error", err)
	}
}
