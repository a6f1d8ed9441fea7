package app_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/activity"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
	"github.com/berthdev/berth/services/reaper/internal/app"
	"github.com/berthdev/berth/services/reaper/internal/policy"
)

var t0 = time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)

// seed appends a workspace's history, each event at its own time.
func seed(t *testing.T, l *eventlog.Log, name string, at time.Time, ps ...events.Payload) string {
	t.Helper()
	id := uuid.NewString()
	var seq uint64
	for i, p := range append([]events.Payload{&events.Created{Name: name, Owner: "alice", Image: "img"}}, ps...) {
		e, err := events.New(id, p, events.Meta{Source: "test", Actor: "user:alice"}, at.Add(time.Duration(i)*time.Second))
		require.NoError(t, err)
		seq, err = l.Append(context.Background(), e, seq)
		require.NoError(t, err)
	}
	return id
}

// openBus starts a real in-process NATS and opens the log and the
// activity bucket on it.
func openBus(t testing.TB) (*eventlog.Log, *activity.Tracker) {
	nc := natstest.Conn(t, natstest.Server(t))
	l, err := eventlog.Open(context.Background(), nc, eventlog.Options{})
	require.NoError(t, err)
	tracker, err := activity.Open(context.Background(), l.JetStream(), time.Second, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	return l, tracker
}

func follow(t *testing.T, ctx context.Context, l *eventlog.Log) *events.Projection {
	proj := events.NewProjection()
	caughtUp, err := l.Follow(ctx, slog.New(slog.DiscardHandler), func(e events.Envelope) { _, _ = proj.Apply(e) })
	require.NoError(t, err)
	<-caughtUp
	return proj
}

// brokenFor fails the activity lookup of one workspace (fault injection
// around the real bucket).
type brokenFor struct {
	app.Activity
	id string
}

func (b brokenFor) LastSeen(ctx context.Context, id string) (time.Time, bool, error) {
	if id == b.id {
		return time.Time{}, false, errors.New("kv timeout")
	}
	return b.Activity.LastSeen(ctx, id)
}

func types(t *testing.T, l *eventlog.Log, id string) []events.Type {
	evs, err := l.Read(context.Background(), id)
	require.NoError(t, err)
	var out []events.Type
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

// Two reapers sweep the same log at the same time with a fake clock: every
// decision is appended exactly once, a workspace whose activity cannot be
// read is skipped without stopping the sweep, active and held workspaces
// are untouched.
func TestTwoReapersActOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, tracker := openBus(t)

	run := &events.Running{ContainerID: "c", Host: "h", IP: "10.0.0.2", Port: 8080}
	hold := true
	active := seed(t, l, "active", t0, &events.StartRequested{}, run)
	idle := seed(t, l, "idle", t0, &events.StartRequested{}, run)
	held := seed(t, l, "held", t0, &events.StartRequested{}, run, &events.LifecycleChanged{Hold: &hold})
	broken := seed(t, l, "broken", t0, &events.StartRequested{}, run)
	old := seed(t, l, "old", t0.Add(-8*24*time.Hour), &events.StartRequested{}, run, &events.StopRequested{}, &events.Stopped{})
	archived := seed(t, l, "archived", t0.Add(-9*24*time.Hour), &events.StartRequested{}, run, &events.StopRequested{}, &events.Stopped{},
		&events.ArchiveRequested{}, &events.Archived{Path: "/a/x.tar.gz", SizeBytes: 10, SHA256: "abc"})
	now := t0.Add(25 * time.Hour)
	require.NoError(t, tracker.Record(ctx, active, now.Add(-90*time.Minute)))

	settings := policy.Settings{IdleTimeout: 24 * time.Hour, MinIdleTimeout: time.Hour, MaxIdleTimeout: 72 * time.Hour,
		Warning: 30 * time.Minute, Retention: 7 * 24 * time.Hour, ArchiveRetry: time.Hour}
	newSweeper := func(name string) *app.Sweeper {
		return &app.Sweeper{Log: l.ConflictAs(app.ErrConflict), Workspaces: follow(t, ctx, l), Activity: brokenFor{tracker, broken}, Policy: settings,
			Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler), Instance: name}
	}
	a, b := newSweeper("a"), newSweeper("b")

	ticks := make(chan time.Time)
	go func() { _ = a.Run(ctx, ticks) }()
	var wg sync.WaitGroup
	var rb app.Result
	wg.Go(func() { rb = b.Sweep(ctx) })
	ticks <- now
	wg.Wait()
	assert.Equal(t, 6, rb.Checked)
	assert.GreaterOrEqual(t, rb.Failures, 1, "the broken workspace is reported")

	want := map[string][]events.Type{
		active:   {events.TypeCreated, events.TypeStartRequested, events.TypeRunning},
		idle:     {events.TypeCreated, events.TypeStartRequested, events.TypeRunning, events.TypeStopRequested},
		held:     {events.TypeCreated, events.TypeStartRequested, events.TypeRunning, events.TypeLifecycleChanged},
		broken:   {events.TypeCreated, events.TypeStartRequested, events.TypeRunning},
		old:      {events.TypeCreated, events.TypeStartRequested, events.TypeRunning, events.TypeStopRequested, events.TypeStopped, events.TypeArchiveRequested},
		archived: {events.TypeCreated, events.TypeStartRequested, events.TypeRunning, events.TypeStopRequested, events.TypeStopped, events.TypeArchiveRequested, events.TypeArchived, events.TypeDeleteRequested},
	}
	require.Eventually(t, func() bool {
		return len(types(t, l, idle)) == 4 && len(types(t, l, old)) == 6 && len(types(t, l, archived)) == 8
	},
		5*time.Second, 10*time.Millisecond)

	// Sweep again on both (a via its tick channel, after the projections
	// caught up): nothing more is asked for.
	time.Sleep(100 * time.Millisecond)
	ticks <- now
	r2 := b.Sweep(ctx)
	ticks <- now // a's second sweep has finished once it takes this tick
	assert.Empty(t, r2.Acted)
	for id, w := range want {
		assert.Equal(t, w, types(t, l, id), id)
	}
	evs, err := l.Read(ctx, idle)
	require.NoError(t, err)
	assert.Equal(t, policy.ReasonIdle, evs[3].Reason)
	assert.Contains(t, []string{"service:reaper:a", "service:reaper:b"}, evs[3].Actor)
	evs, err = l.Read(ctx, archived)
	require.NoError(t, err)
	assert.Equal(t, policy.ReasonRetention, evs[7].Reason)
}

// The warning is appended once per idle period, before the stop.
func TestIdleWarningOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, tracker := openBus(t)
	id := seed(t, l, "w", t0, &events.StartRequested{}, &events.Running{ContainerID: "c", IP: "10.0.0.2", Port: 8080})
	clock := t0.Add(23*time.Hour + 45*time.Minute)
	proj := follow(t, ctx, l)
	s := &app.Sweeper{Log: l.ConflictAs(app.ErrConflict), Workspaces: proj, Activity: tracker, Now: func() time.Time { return clock },
		Policy: policy.Settings{IdleTimeout: 24 * time.Hour, Warning: time.Hour}, Logger: slog.New(slog.DiscardHandler)}
	r := s.Sweep(ctx)
	assert.Equal(t, 1, r.Acted[policy.Warn])
	require.Eventually(t, func() bool { ws, _ := proj.Workspace(id); return ws.IdleWarning != nil }, 5*time.Second, 10*time.Millisecond)
	ws, _ := proj.Workspace(id)
	assert.True(t, ws.IdleWarning.StopAt.Equal(t0.Add(24*time.Hour+2*time.Second)), "stop_at %s", ws.IdleWarning.StopAt)
	assert.Empty(t, s.Sweep(ctx).Acted, "warned once")
	clock = clock.Add(20 * time.Minute)
	assert.Equal(t, 1, s.Sweep(ctx).Acted[policy.Stop])
}
