package app_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
	"github.com/berthdev/berth/services/provisioner/internal/app"
)

var quiet = slog.New(slog.DiscardHandler)

// logWorld is a real in-process NATS log and a projection following it.
type logWorld struct {
	t    *testing.T
	log  *eventlog.Log
	proj *events.Projection
}

func newLogWorld(t *testing.T) *logWorld {
	t.Helper()
	l, err := eventlog.Open(context.Background(), natstest.Conn(t, natstest.Server(t)), eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	proj := events.NewProjection()
	if err := l.Replay(ctx, quiet, proj); err != nil {
		t.Fatal(err)
	}
	return &logWorld{t: t, log: l, proj: proj}
}

// append records p on id at time at, as of the projection's version, and
// waits until the projection has it.
func (w *logWorld) append(id string, p events.Payload, at time.Time) {
	w.t.Helper()
	ws, _ := w.proj.Workspace(id)
	e, err := events.New(id, p, events.Meta{Source: "test", Actor: "user:test"}, at)
	if err != nil {
		w.t.Fatal(err)
	}
	seq, err := w.log.Append(context.Background(), e, ws.Version)
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.proj.WaitFor(ctx, seq); err != nil {
		w.t.Fatal(err)
	}
}

func (w *logWorld) workspace(status events.Status, at time.Time) string {
	w.t.Helper()
	id := uuid.NewString()
	w.append(id, &events.Created{Name: "w" + id[:6], Owner: "alice", Image: "img", Projects: []string{}}, at)
	steps := map[events.Status][]events.Payload{
		events.StatusCreated:  nil,
		events.StatusStarting: {&events.StartRequested{}},
		events.StatusRunning:  {&events.StartRequested{}, &events.Running{ContainerID: "c", Host: "h", IP: "10.0.0.1", Port: 8080}},
		events.StatusStopping: {&events.StartRequested{}, &events.Running{ContainerID: "c", Host: "h", IP: "10.0.0.1", Port: 8080}, &events.StopRequested{}},
	}
	for _, p := range steps[status] {
		w.append(id, p, at)
	}
	return id
}

func (w *logWorld) types(id string) []events.Type {
	w.t.Helper()
	evs, err := w.log.Read(context.Background(), id)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []events.Type
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

// racingEngine lists a container that has not started yet, and while the
// listing is in flight the start completes and "running" is recorded: the
// interleaving that made the reconciler record a false container_exited.
type racingEngine struct {
	w  *logWorld
	id string
}

func (e racingEngine) List(context.Context) ([]app.Observed, error) {
	e.w.append(e.id, &events.Running{ContainerID: "c", Host: "h", IP: "10.0.0.1", Port: 8080}, time.Now())
	return []app.Observed{{ContainerID: "c", WorkspaceID: e.id, Running: false, Created: time.Now()}}, nil
}
func (racingEngine) RemoveContainer(context.Context, string) error      { return nil }
func (racingEngine) EnsureStopped(context.Context, string) (int, error) { return 0, nil }

func TestReconcilerNeverRecordsDriftFromAStaleSnapshot(t *testing.T) {
	w := newLogWorld(t)
	id := w.workspace(events.StatusStarting, time.Now())
	rec := &app.Reconciler{Log: w.log.ConflictAs(app.ErrConflict), Projection: w.proj, Engine: racingEngine{w, id}, Driver: app.New(w.log.ConflictAs(app.ErrConflict), w.proj, nil, quiet, app.Options{}),
		Logger: quiet, OrphanGrace: time.Hour, Restart: true, Redrive: time.Hour, Deadline: time.Hour, Now: time.Now}
	if err := rec.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := w.types(id)
	if last := got[len(got)-1]; last != events.TypeRunning {
		t.Fatalf("log after the sweep: %v; want it to end with running (no false failure)", got)
	}
}

type quietEngine struct{}

func (quietEngine) List(context.Context) ([]app.Observed, error)       { return nil, nil }
func (quietEngine) RemoveContainer(context.Context, string) error      { return nil }
func (quietEngine) EnsureStopped(context.Context, string) (int, error) { return 0, nil }

// recordingDriver notes which workspaces the reconciler carried out again;
// busy ones are held by a (pretend) handler.
type recordingDriver struct {
	mu      sync.Mutex
	handled []string
	busy    map[string]bool
	done    chan string
}

func (d *recordingDriver) Handle(_ context.Context, id string, _ uint64, _ bool) error {
	d.mu.Lock()
	d.handled = append(d.handled, id)
	d.mu.Unlock()
	d.done <- id
	return nil
}

func (d *recordingDriver) TryExclusive(id string) (func(), bool) {
	if d.busy[id] {
		return nil, false
	}
	return func() {}, true
}

// TestReconcilerSettlesOpenRequests: a request nobody works on is carried
// out again after the redrive period; a start older than the deadline is
// recorded as failed (deadline_exceeded) instead of staying "starting"
// forever; one a handler holds right now is left alone.
func TestReconcilerSettlesOpenRequests(t *testing.T) {
	w := newLogWorld(t)
	now := time.Now()
	expired := w.workspace(events.StatusStarting, now.Add(-10*time.Minute))
	busy := w.workspace(events.StatusStarting, now.Add(-10*time.Minute))
	stale := w.workspace(events.StatusStopping, now.Add(-time.Minute))
	fresh := w.workspace(events.StatusStarting, now)
	d := &recordingDriver{busy: map[string]bool{busy: true}, done: make(chan string, 4)}
	rec := &app.Reconciler{Log: w.log.ConflictAs(app.ErrConflict), Projection: w.proj, Engine: quietEngine{}, Driver: d, Logger: quiet,
		OrphanGrace: time.Hour, Redrive: 30 * time.Second, Deadline: 5 * time.Minute, Now: func() time.Time { return now }}
	if err := rec.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-d.done:
		if id != stale {
			t.Fatalf("carried out %s, want the stale stop %s", id, stale)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stale stop was not carried out again")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.proj.Await(ctx, func() bool { ws, _ := w.proj.Workspace(expired); return ws.Status == events.StatusError }); err != nil {
		t.Fatalf("expired start not recorded as failed: %v", err)
	}
	ws, _ := w.proj.Workspace(expired)
	if ws.Failure == nil || ws.Failure.Code != "deadline_exceeded" {
		t.Fatalf("failure %+v, want deadline_exceeded", ws.Failure)
	}
	for id, want := range map[string]events.Status{busy: events.StatusStarting, fresh: events.StatusStarting, stale: events.StatusStopping} {
		if ws, _ := w.proj.Workspace(id); ws.Status != want {
			t.Errorf("%s: %s, want %s untouched", ws.Name, ws.Status, want)
		}
	}
	if len(d.handled) != 1 {
		t.Errorf("carried out %v, want only the stale stop", d.handled)
	}
}

func TestOverdue(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	at := func(s events.Status, ago time.Duration) events.Workspace {
		return events.Workspace{ID: string(s) + ago.String(), Status: s, StatusSince: now.Add(-ago)}
	}
	cases := []struct {
		ws   events.Workspace
		want *app.Open
	}{
		{at(events.StatusStarting, 10*time.Second), nil},
		{at(events.StatusStarting, time.Minute), &app.Open{}},
		{at(events.StatusStarting, 6*time.Minute), &app.Open{Expired: true}},
		{at(events.StatusStopping, 6*time.Minute), &app.Open{Expired: true}},
		{at(events.StatusArchiving, time.Hour), &app.Open{}}, // archives may take long: redriven, never expired
		{at(events.StatusDeleting, time.Hour), &app.Open{}},
		{at(events.StatusRunning, time.Hour), nil},
		{at(events.StatusStopped, time.Hour), nil},
		{at(events.StatusCreated, time.Hour), nil}, // prepared ahead, but no request waits
		{events.Workspace{ID: "no-since", Status: events.StatusStarting}, nil},
	}
	for _, c := range cases {
		got := app.Overdue([]events.Workspace{c.ws}, now, 30*time.Second, 5*time.Minute)
		switch {
		case c.want == nil && len(got) != 0:
			t.Errorf("%s: %+v, want nothing", c.ws.ID, got)
		case c.want != nil && (len(got) != 1 || got[0].Expired != c.want.Expired):
			t.Errorf("%s: %+v, want expired=%v", c.ws.ID, got, c.want.Expired)
		}
	}
}
