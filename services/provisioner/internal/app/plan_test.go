package app

import (
	"testing"

	"github.com/berthdev/berth/pkg/events"
)

func TestPlan(t *testing.T) {
	want := map[events.Status]Action{
		events.StatusStarting: ActionEnsureRunning,
		events.StatusStopping: ActionEnsureStopped,
		events.StatusDeleting: ActionEnsureRemoved,
	}
	for _, s := range events.Statuses() {
		if got := Plan(events.Workspace{Status: s}); got != want[s] {
			t.Errorf("%q: got %s want %s", s, got, want[s])
		}
	}
}
