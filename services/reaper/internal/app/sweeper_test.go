package app_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/services/reaper/internal/app"
	"github.com/berthdev/berth/services/reaper/internal/policy"
)

// fakeLog records appends and the version each was made against; subjects
// in conflict lose the race, subjects in broken fail outright.
type fakeLog struct {
	mu               sync.Mutex
	appended         []events.Envelope
	expected         []uint64
	conflict, broken map[string]bool
}

func (l *fakeLog) Append(_ context.Context, e events.Envelope, expected uint64) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.conflict[e.Subject]:
		return 0, fmt.Errorf("append: %w", app.ErrConflict)
	case l.broken[e.Subject]:
		return 0, errors.New("bus down")
	}
	l.appended = append(l.appended, e)
	l.expected = append(l.expected, expected)
	return uint64(len(l.appended)), nil
}

func (l *fakeLog) count() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.appended) }

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

// noActivity: nothing was ever recorded.
type noActivity struct{}

func (noActivity) LastSeen(context.Context, string) (time.Time, bool, error) {
	return time.Time{}, false, nil
}

func runningSince(id string, at time.Time) events.Workspace {
	return events.Workspace{ID: id, Name: id, Status: events.StatusRunning, StatusSince: at, Version: 3}
}

var (
	now   = time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	quiet = slog.New(slog.DiscardHandler)
)

// TestSweepCountsOutcomes: with fakes only, one sweep appends what the
// policy decides against the version it decided on, counts a lost race as
// a conflict (not a failure) and a failed append as a failure, and goes on
// after both.
func TestSweepCountsOutcomes(t *testing.T) {
	long := now.Add(-48 * time.Hour)
	l := &fakeLog{conflict: map[string]bool{"raced": true}, broken: map[string]bool{"broken": true}}
	s := &app.Sweeper{Log: l, Activity: noActivity{}, Now: func() time.Time { return now }, Logger: quiet,
		Workspaces: fakeWorkspaces{runningSince("idle", long), runningSince("raced", long), runningSince("broken", long), runningSince("fresh", now)},
		Policy:     policy.Settings{IdleTimeout: 24 * time.Hour}, Instance: "r1"}
	r := s.Sweep(context.Background())
	if r.Checked != 4 || r.Acted[policy.Stop] != 1 || r.Conflicts != 1 || r.Failures != 1 {
		t.Fatalf("result %+v", r)
	}
	e := l.appended[0]
	if e.Subject != "idle" || e.Type != events.TypeStopRequested || e.Reason != policy.ReasonIdle || e.Actor != "service:reaper:r1" || l.expected[0] != 3 {
		t.Fatalf("appended %+v at version %d", e, l.expected[0])
	}
}

// TestRunSweepsOnEveryTick: Run sweeps once per tick it is given and
// returns when ctx ends.
func TestRunSweepsOnEveryTick(t *testing.T) {
	l := &fakeLog{}
	s := &app.Sweeper{Log: l, Activity: noActivity{}, Now: func() time.Time { return now }, Logger: quiet,
		Workspaces: fakeWorkspaces{runningSince("idle", now.Add(-48*time.Hour))}, Policy: policy.Settings{IdleTimeout: 24 * time.Hour}}
	ctx, cancel := context.WithCancel(context.Background())
	ticks := make(chan time.Time)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ticks) }()
	ticks <- now
	ticks <- now
	ticks <- now // taken once the second sweep is over
	if got := l.count(); got < 2 {
		t.Fatalf("%d appends after two ticks, want one per tick", got)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// laggingCache says a workspace is long idle; the record itself says it
// was just used (the watcher has not caught up).
type laggingCache struct{ cached, record time.Time }

func (c laggingCache) LastSeen(context.Context, string) (time.Time, bool, error) {
	return c.cached, true, nil
}
func (c laggingCache) Confirm(context.Context, string) (time.Time, bool, error) {
	return c.record, true, nil
}

// TestCacheIsConfirmedBeforeStopping: a cached activity time that lags
// never stops a workspace in use: the record is read before acting; a
// workspace idle by the record too is stopped.
func TestCacheIsConfirmedBeforeStopping(t *testing.T) {
	l := &fakeLog{}
	long := now.Add(-48 * time.Hour)
	s := &app.Sweeper{Log: l, Activity: laggingCache{cached: long, record: now.Add(-time.Minute)}, Now: func() time.Time { return now },
		Logger: quiet, Workspaces: fakeWorkspaces{runningSince("busy", long)}, Policy: policy.Settings{IdleTimeout: 24 * time.Hour}}
	if r := s.Sweep(context.Background()); len(r.Acted) != 0 || l.count() != 0 {
		t.Fatalf("stopped a workspace used a minute ago: %+v", r)
	}
	s.Activity = laggingCache{cached: long, record: long}
	if r := s.Sweep(context.Background()); r.Acted[policy.Stop] != 1 {
		t.Fatalf("an idle workspace was not stopped: %+v", r)
	}
}
