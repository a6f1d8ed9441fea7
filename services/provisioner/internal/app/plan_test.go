package app

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/wsurl"
)

func TestPlan(t *testing.T) {
	want := map[events.Status]Action{
		events.StatusStarting:  ActionEnsureRunning,
		events.StatusStopping:  ActionEnsureStopped,
		events.StatusDeleting:  ActionEnsureRemoved,
		events.StatusArchiving: ActionArchive,
		events.StatusRestoring: ActionRestore,
	}
	for _, s := range events.Statuses() {
		if got := Plan(events.Workspace{Status: s}); got != want[s] {
			t.Errorf("%q: got %s want %s", s, got, want[s])
		}
	}
}

// catalogOf is a projection holding one catalog image.
func catalogOf(t *testing.T, img events.ImageAdded) *events.Projection {
	t.Helper()
	proj := events.NewProjection()
	e, err := events.New(events.CatalogSubject, &img, events.Meta{Source: "test", Actor: "user:admin"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e.Sequence = 1
	if _, err := proj.Apply(e); err != nil {
		t.Fatal(err)
	}
	return proj
}

func TestSpecDropsForbiddenCapabilities(t *testing.T) {
	p := New(nil, catalogOf(t, events.ImageAdded{Ref: "img", CapAdd: []string{"NET_BIND_SERVICE", "SYS_ADMIN", "cap_sys_admin", "ALL"}}),
		nil, slog.New(slog.DiscardHandler), Options{ProjectsRoot: t.TempDir(), Routing: wsurl.ModePath})
	s, err := p.spec(events.Workspace{ID: "id", Name: "n", Image: "img"})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.CapAdd) != 1 || s.CapAdd[0] != "NET_BIND_SERVICE" {
		t.Fatalf("caps %v", s.CapAdd)
	}
	if !slices.Contains(s.Env, "BERTH_BASE_PATH=/workspace-n") {
		t.Fatalf("env %v", s.Env)
	}
	if _, err := p.spec(events.Workspace{ID: "id", Name: "n", Image: "img", Projects: []string{"../etc"}}); err == nil {
		t.Fatal("escaping project accepted")
	}
}

// TestDrainIsBounded: the wait before a stop counts from the request's
// time, but a writer whose clock runs ahead (or lies) cannot make it longer
// than StopDrain; an old request is not waited for at all.
func TestDrainIsBounded(t *testing.T) {
	now := time.Now()
	p := New(nil, nil, nil, slog.New(slog.DiscardHandler), Options{StopDrain: 50 * time.Millisecond, Now: func() time.Time { return now }})
	for name, since := range map[string]time.Time{"future": now.Add(24 * time.Hour), "now": now, "old": now.Add(-time.Hour)} {
		start := time.Now()
		if err := p.drain(context.Background(), events.Workspace{StatusSince: since}); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > time.Second || (name == "old" && took > 20*time.Millisecond) {
			t.Errorf("%s: drained for %s", name, took)
		}
	}
}
