package app

import (
	"log/slog"
	"slices"
	"testing"

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

type catalogOf map[string]events.CatalogImage

func (c catalogOf) Image(ref string) (events.CatalogImage, bool) { img, ok := c[ref]; return img, ok }

func TestSpecDropsForbiddenCapabilities(t *testing.T) {
	p := New(nil, catalogOf{"img": {Ref: "img", CapAdd: []string{"NET_BIND_SERVICE", "SYS_ADMIN", "cap_sys_admin", "ALL"}}},
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
