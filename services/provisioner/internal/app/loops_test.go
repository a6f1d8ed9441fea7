package app_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/berthdev/berth/pkg/platform/wsurl"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/services/provisioner/internal/app"
)

// within fails the test unless ch yields within a few seconds.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// quietFor fails the test if ch yields within a short while.
func quietFor[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("unexpected %s", what)
	case <-time.After(50 * time.Millisecond):
	}
}

// running starts run in a goroutine and returns a function that cancels it
// and checks it returned nil.
func running(t *testing.T, run func(ctx context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	return func() {
		t.Helper()
		cancel()
		if err := within(t, done, "Run to return after cancel"); err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
}

type report struct {
	instance string
	engine   error
}

type fakeBoard struct{ reports chan report }

func (b fakeBoard) Publish(_ context.Context, instance string, engineErr error, _ time.Time) error {
	b.reports <- report{instance, engineErr}
	return nil
}

// fakeEngine answers pings with err, or hangs until the ping's context
// ends when hang is set.
type fakeEngine struct {
	mu   sync.Mutex
	err  error
	hang bool
}

func (e *fakeEngine) Ping(ctx context.Context) error {
	e.mu.Lock()
	err, hang := e.err, e.hang
	e.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	return err
}

func (e *fakeEngine) set(err error, hang bool) { e.mu.Lock(); e.err, e.hang = err, hang; e.mu.Unlock() }

// TestEngineReporterReportsAtOnceAndOnTicks: the first report goes out
// before any tick, then one per tick with the engine's state at that
// time; a ping that hangs is cut off and reported as a failure.
func TestEngineReporterReportsAtOnceAndOnTicks(t *testing.T) {
	board, engine := fakeBoard{reports: make(chan report, 4)}, &fakeEngine{}
	r := &app.EngineReporter{Board: board, Engine: engine, Instance: "host-1", Logger: quiet, Now: time.Now, PingTimeout: 10 * time.Millisecond}
	ticks := make(chan time.Time)
	stop := running(t, func(ctx context.Context) error { return r.Run(ctx, ticks) })
	defer stop()
	if got := within(t, board.reports, "the first report"); got.instance != "host-1" || got.engine != nil {
		t.Fatalf("first report %+v, want host-1 ok", got)
	}
	quietFor(t, board.reports, "report without a tick")
	down := errors.New("engine down")
	engine.set(down, false)
	ticks <- time.Now()
	if got := within(t, board.reports, "a report per tick"); !errors.Is(got.engine, down) {
		t.Fatalf("report %+v, want the engine's error", got)
	}
	engine.set(nil, true)
	ticks <- time.Now()
	if got := within(t, board.reports, "a report after a hanging ping"); !errors.Is(got.engine, context.DeadlineExceeded) {
		t.Fatalf("report %+v, want the ping cut off", got)
	}
}

type fakeWorkspaces []events.Workspace

func (f fakeWorkspaces) Workspaces(keep func(events.Workspace) bool) []events.Workspace {
	var out []events.Workspace
	for _, ws := range f {
		if keep == nil || keep(ws) {
			out = append(out, ws)
		}
	}
	return out
}

func (f fakeWorkspaces) Workspace(id string) (events.Workspace, bool) {
	for _, ws := range f {
		if ws.ID == id {
			return ws, true
		}
	}
	return events.Workspace{}, false
}

// TestResumePendingHandlesOpenRequests: every workspace with an open
// request is handled once, and only those.
func TestResumePendingHandlesOpenRequests(t *testing.T) {
	var wss fakeWorkspaces
	var open []string
	for _, st := range events.Statuses() {
		wss = append(wss, events.Workspace{ID: string(st), Name: string(st), Status: st})
		if app.Plan(events.Workspace{Status: st}) != app.ActionNone {
			open = append(open, string(st))
		}
	}
	d := &recordingDriver{done: make(chan string, len(wss))}
	if n := app.ResumePending(context.Background(), quiet, wss, d); n != len(open) {
		t.Fatalf("started %d, want %d", n, len(open))
	}
	var handled []string
	for range open {
		handled = append(handled, within(t, d.done, "a resumed request"))
	}
	quietFor(t, d.done, "a workspace with nothing open handled")
	slices.Sort(handled)
	slices.Sort(open)
	if !slices.Equal(handled, open) {
		t.Fatalf("handled %v, want %v", handled, open)
	}
}

// fakeSweeper reports every sweep; the first fail sweeps fail.
type fakeSweeper struct {
	sweeps chan struct{}
	fail   int
}

func (s *fakeSweeper) Sweep(context.Context) error {
	s.sweeps <- struct{}{}
	if s.fail > 0 {
		s.fail--
		return errors.New("engine unreachable")
	}
	return nil
}

// settleClock hands the loop a channel per wait and tells the test how
// long the loop asked to wait.
type settleClock struct {
	asked chan time.Duration
	fire  chan time.Time
}

func (c settleClock) After(d time.Duration) <-chan time.Time {
	c.asked <- d
	return c.fire
}

// TestReconcileLoopSweeps: one sweep at start (a failed one does not stop
// the loop), one per tick, and one per kick only once the settle delay has
// passed; a burst of kicks during the delay makes one more sweep, not one
// each.
func TestReconcileLoopSweeps(t *testing.T) {
	s := &fakeSweeper{sweeps: make(chan struct{}, 8), fail: 1}
	clock := settleClock{asked: make(chan time.Duration, 1), fire: make(chan time.Time)}
	l := &app.ReconcileLoop{Reconciler: s, Logger: quiet, Settle: 42 * time.Millisecond, After: clock.After}
	ticks, kicks := make(chan time.Time), make(chan struct{}, 1)
	stop := running(t, func(ctx context.Context) error { return l.Run(ctx, ticks, kicks) })
	defer stop()
	within(t, s.sweeps, "the sweep at start")

	ticks <- time.Now()
	within(t, s.sweeps, "the sweep on a tick")

	kicks <- struct{}{}
	if d := within(t, clock.asked, "the settle wait"); d != 42*time.Millisecond {
		t.Fatalf("settled for %s, want the configured 42ms", d)
	}
	kicks <- struct{}{} // the burst goes on meanwhile
	quietFor(t, s.sweeps, "sweep before the burst settled")
	clock.fire <- time.Now()
	within(t, s.sweeps, "the sweep after the kick")
	within(t, clock.asked, "the wait for the kick that came during the first")
	clock.fire <- time.Now()
	within(t, s.sweeps, "the sweep for the rest of the burst")
	quietFor(t, s.sweeps, "more sweeps than kicks")
}

// TestReconcileLoopStopsWhileSettling: shutdown does not wait for the
// settle delay.
func TestReconcileLoopStopsWhileSettling(t *testing.T) {
	s := &fakeSweeper{sweeps: make(chan struct{}, 8)}
	clock := settleClock{asked: make(chan time.Duration, 1), fire: make(chan time.Time)}
	l := &app.ReconcileLoop{Reconciler: s, Logger: quiet, After: clock.After}
	kicks := make(chan struct{}, 1)
	stop := running(t, func(ctx context.Context) error { return l.Run(ctx, nil, kicks) })
	within(t, s.sweeps, "the sweep at start")
	kicks <- struct{}{}
	if d := within(t, clock.asked, "the settle wait"); d != app.DefaultSettle {
		t.Fatalf("settled for %s, want the default %s", d, app.DefaultSettle)
	}
	stop() // fails the test if Run waits for the delay
}

type fakeFiles struct {
	mu sync.Mutex
	at time.Time
}

func (f *fakeFiles) FileModTime(context.Context, string, string) (time.Time, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.at, true, nil
}

func (f *fakeFiles) touch(at time.Time) { f.mu.Lock(); f.at = at; f.mu.Unlock() }

type fakeRecorder chan time.Time

func (r fakeRecorder) Record(_ context.Context, _ string, at time.Time) error { r <- at; return nil }

// TestHeartbeatsPollAtOnceAndOnTicks: the heartbeat is read at once, then
// on every tick; a time already recorded is not recorded again.
func TestHeartbeatsPollAtOnceAndOnTicks(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	files, rec := &fakeFiles{at: t0}, make(fakeRecorder, 4)
	ws := events.Workspace{ID: "w", Name: "w", Status: events.StatusRunning, Endpoint: &events.Endpoint{ContainerID: "c"}}
	h := &app.Heartbeats{Projection: fakeWorkspaces{ws}, Files: files, Activity: rec, Path: "/hb", Logger: quiet,
		Now: func() time.Time { return t0.Add(time.Hour) }}
	ticks := make(chan time.Time)
	stop := running(t, func(ctx context.Context) error { return h.Run(ctx, ticks) })
	defer stop()
	if at := within(t, (<-chan time.Time)(rec), "the first poll"); !at.Equal(t0) {
		t.Fatalf("recorded %s, want %s", at, t0)
	}
	ticks <- time.Now()
	quietFor(t, (<-chan time.Time)(rec), "the same heartbeat recorded twice")
	files.touch(t0.Add(time.Minute))
	ticks <- time.Now()
	if at := within(t, (<-chan time.Time)(rec), "the poll after a touch"); !at.Equal(t0.Add(time.Minute)) {
		t.Fatalf("recorded %s, want the new time", at)
	}
}

// pathFiles answers a file's time only at the expected path.
type pathFiles struct {
	path string
	at   time.Time
}

func (f pathFiles) FileModTime(_ context.Context, _, path string) (time.Time, bool, error) {
	return f.at, path == f.path, nil
}

// fakeProbe answers one endpoint's time.
type fakeProbe struct {
	path, field string
	at          time.Time
}

func (p fakeProbe) JSONTime(_ context.Context, _ string, port int, path, field string) (time.Time, bool, error) {
	return p.at, port == 8888 && path == p.path && field == p.field, nil
}

// TestHeartbeatsFollowTheProfile: each workspace's activity is read the
// way its image's profile says: its own heartbeat file, a JSON endpoint
// of the IDE, or nothing (traffic through Traefik only).
func TestHeartbeatsFollowTheProfile(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	images := map[string]events.CatalogImage{
		"file":    {Profile: events.ImageProfile{Activity: "file:/home/x/.beat"}},
		"jupyter": {Profile: events.ImageProfile{Port: 8888, Activity: "http:/api/status#last_activity"}},
		"traffic": {Profile: events.ImageProfile{Activity: "traffic"}},
	}
	for image, want := range map[string]bool{"file": true, "jupyter": true, "traffic": false, "plain": false} {
		rec := make(fakeRecorder, 4)
		ws := events.Workspace{ID: image, Name: image, Image: image, Status: events.StatusRunning, Endpoint: &events.Endpoint{ContainerID: "c", Port: images[image].Profile.Port}}
		h := &app.Heartbeats{Projection: fakeWorkspaces{ws}, Files: pathFiles{path: "/home/x/.beat", at: t0}, Probe: fakeProbe{path: "/api/status", field: "last_activity", at: t0},
			Activity: rec, Path: "/default/beat", Logger: quiet, Now: func() time.Time { return t0.Add(time.Hour) },
			Images: func(ref string) (events.CatalogImage, bool) { img, ok := images[ref]; return img, ok }}
		h.Poll(context.Background())
		if got := len(rec) == 1; got != want {
			t.Errorf("%s: recorded %v, want %v", image, got, want)
		}
	}
}

// TestHeartbeatAheadOfNowCountsOnce: a heartbeat file touched into the
// future is recorded as now, once; it does not keep the workspace alive
// by being "new" at every poll.
func TestHeartbeatAheadOfNowCountsOnce(t *testing.T) {
	now := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	rec := make(fakeRecorder, 4)
	ws := events.Workspace{ID: "w", Name: "w", Status: events.StatusRunning, Endpoint: &events.Endpoint{ContainerID: "c"}}
	h := &app.Heartbeats{Projection: fakeWorkspaces{ws}, Files: &fakeFiles{at: now.Add(24 * time.Hour)}, Activity: rec, Path: "/hb",
		Logger: quiet, Now: func() time.Time { return now }}
	h.Poll(context.Background())
	h.Poll(context.Background())
	h.Poll(context.Background())
	if len(rec) != 1 {
		t.Fatalf("recorded %d times, want once", len(rec))
	}
	if at := <-rec; !at.Equal(now) {
		t.Fatalf("recorded %s, want now (%s)", at, now)
	}
}

// fakeBusy answers one busy probe.
type fakeBusy struct {
	path, field, value string
	busy               bool
}

func (b *fakeBusy) JSONHas(_ context.Context, _ string, _ int, path, field, value string) (bool, error) {
	if path != b.path || field != b.field || value != b.value {
		return false, fmt.Errorf("asked %s#%s=%s", path, field, value)
	}
	return b.busy, nil
}

// TestHeartbeatsCountABusyApp: while the profile's busy probe says the app
// works (a Jupyter cell that runs without output), every poll records now,
// though the app's own last activity stands still (here: a time ahead of
// now, recorded once as now); once it is done, nothing more is recorded.
func TestHeartbeatsCountABusyApp(t *testing.T) {
	t0 := time.Date(2026, 12, 8, 9, 0, 0, 0, time.UTC)
	now := t0
	images := map[string]events.CatalogImage{"jupyter": {Profile: events.ImageProfile{Port: 8888,
		Activity: "http:{base}/api/status#last_activity", Busy: "http:{base}/api/kernels#execution_state=busy"}}}
	rec := make(fakeRecorder, 8)
	busy := &fakeBusy{path: "/workspace-w/api/kernels", field: "execution_state", value: "busy"}
	ws := events.Workspace{ID: "w", Name: "w", Image: "jupyter", Status: events.StatusRunning, Endpoint: &events.Endpoint{ContainerID: "c", Port: 8888}}
	h := &app.Heartbeats{Projection: fakeWorkspaces{ws}, Files: pathFiles{}, Probe: fakeProbe{path: "/workspace-w/api/status", field: "last_activity", at: t0.Add(48 * time.Hour)},
		Busy: busy, Activity: rec, Routing: wsurl.ModePath, Logger: quiet, Now: func() time.Time { return now },
		Images: func(ref string) (events.CatalogImage, bool) { img, ok := images[ref]; return img, ok }}
	h.Poll(context.Background())
	if got := within(t, (<-chan time.Time)(rec), "the first poll"); !got.Equal(now) {
		t.Fatalf("a time ahead recorded as %s, want now (%s)", got, now)
	}
	busy.busy = true
	for i := 1; i <= 3; i++ {
		now = t0.Add(time.Duration(i) * time.Minute)
		h.Poll(context.Background())
		if got := within(t, (<-chan time.Time)(rec), "a busy poll"); !got.Equal(now) {
			t.Fatalf("poll %d recorded %s, want now (%s)", i, got, now)
		}
	}
	busy.busy = false
	now = now.Add(time.Minute)
	h.Poll(context.Background())
	if len(rec) != 0 {
		t.Fatalf("an idle app recorded %s", <-rec)
	}
}
