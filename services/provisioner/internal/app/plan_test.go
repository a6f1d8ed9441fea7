package app

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
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
		// Defined, never started: its container is made ahead of the start.
		events.StatusCreated: ActionPrepare,
	}
	for _, s := range events.Statuses() {
		if got := Plan(events.Workspace{Status: s}); got != want[s] {
			t.Errorf("%q: got %s want %s", s, got, want[s])
		}
	}
	if got := Plan(events.Workspace{Status: events.StatusCreated, Desired: events.DesiredRunning}); got != ActionNone {
		t.Errorf("created with a start asked for: %s, want none (the start's own event plans it)", got)
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

// TestPolicy: the provisioner checks again what the API checked, because
// the log may hold events no API validated (a forged or an old one): the
// image must be in the catalog, every limit set and within bounds, every
// capability on the allow-list. Anything else is a policy_violation.
func TestPolicy(t *testing.T) {
	ok := events.Resources{MemoryBytes: 1 << 30, MilliCPUs: 500, Pids: 256}
	cases := map[string]struct {
		img  events.ImageAdded
		ws   events.Workspace
		want string // "" = allowed
	}{
		"fine":                {events.ImageAdded{Ref: "img", CapAdd: []string{"NET_BIND_SERVICE", "cap_chown"}}, events.Workspace{Image: "img", Resources: ok}, ""},
		"not in the catalog":  {events.ImageAdded{Ref: "img"}, events.Workspace{Image: "other", Resources: ok}, "not in the catalog"},
		"no memory limit":     {events.ImageAdded{Ref: "img"}, events.Workspace{Image: "img", Resources: events.Resources{MilliCPUs: 500, Pids: 256}}, "no limit"},
		"no limits at all":    {events.ImageAdded{Ref: "img"}, events.Workspace{Image: "img"}, "no limit"},
		"over the bounds":     {events.ImageAdded{Ref: "img"}, events.Workspace{Image: "img", Resources: events.Resources{MemoryBytes: 64 << 30, MilliCPUs: 500, Pids: 256}}, "exceed"},
		"sys_admin":           {events.ImageAdded{Ref: "img", CapAdd: []string{"SYS_ADMIN"}}, events.Workspace{Image: "img", Resources: ok}, "SYS_ADMIN"},
		"dac_read_search":     {events.ImageAdded{Ref: "img", CapAdd: []string{"DAC_READ_SEARCH", "SYS_PTRACE"}}, events.Workspace{Image: "img", Resources: ok}, "DAC_READ_SEARCH"},
		"made-up capability":  {events.ImageAdded{Ref: "img", CapAdd: []string{"NOT_A_CAP"}}, events.Workspace{Image: "img", Resources: ok}, "NOT_A_CAP"},
		"disk over the bound": {events.ImageAdded{Ref: "img"}, events.Workspace{Image: "img", Resources: events.Resources{MemoryBytes: 1 << 30, MilliCPUs: 500, Pids: 256, DiskBytes: 21 << 30}}, "BERTH_MAX_DISK"},
		"negative disk":       {events.ImageAdded{Ref: "img"}, events.Workspace{Image: "img", Resources: events.Resources{MemoryBytes: 1 << 30, MilliCPUs: 500, Pids: 256, DiskBytes: -1}}, "BERTH_MAX_DISK"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := New(nil, catalogOf(t, c.img), nil, slog.New(slog.DiscardHandler), Options{ProjectsRoot: t.TempDir(), Routing: wsurl.ModePath,
				Max: events.Resources{MemoryBytes: 8 << 30, MilliCPUs: 4000, Pids: 4096, DiskBytes: 20 << 30}})
			c.ws.ID, c.ws.Name = "id", "n"
			s, err := p.spec(c.ws)
			var f *Failure
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want == "":
				// A workspace defined before disk limits gets BERTH_MAX_DISK.
				if !slices.Equal(s.CapAdd, []string{"NET_BIND_SERVICE", "CHOWN"}) || !slices.Contains(s.Env, "BERTH_BASE_PATH=/workspace-n") || s.Resources.DiskBytes != 20<<30 {
					t.Fatalf("spec %+v", s)
				}
			case !errors.As(err, &f) || f.Code != "policy_violation" || !strings.Contains(f.Message, c.want):
				t.Fatalf("got %v, want policy_violation naming %q", err, c.want)
			}
		})
	}
	p := New(nil, catalogOf(t, events.ImageAdded{Ref: "img"}), nil, slog.New(slog.DiscardHandler), Options{ProjectsRoot: t.TempDir()})
	if _, err := p.spec(events.Workspace{ID: "id", Name: "n", Image: "img", Resources: ok, Projects: []string{"../etc"}}); err == nil {
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
