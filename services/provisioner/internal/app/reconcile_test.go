package app

import (
	"testing"
	"time"

	"github.com/berthdev/berth/pkg/events"
)

func TestDiff(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	old, fresh := now.Add(-time.Hour), now.Add(-time.Second)
	wss := []events.Workspace{
		{ID: "run-ok", Status: events.StatusRunning},
		{ID: "run-gone", Status: events.StatusRunning},
		{ID: "run-dead", Status: events.StatusRunning},
		{ID: "stopped-but-running", Status: events.StatusStopped},
		{ID: "stopped-ok", Status: events.StatusStopped},
		{ID: "starting", Status: events.StatusStarting},
		{ID: "deleted", Status: events.StatusDeleted},
	}
	observed := []Observed{
		{ContainerID: "c1", WorkspaceID: "run-ok", Running: true, Created: old},
		{ContainerID: "c3", WorkspaceID: "run-dead", Running: false, Created: old},
		{ContainerID: "c4", WorkspaceID: "stopped-but-running", Running: true, Created: old},
		{ContainerID: "c5", WorkspaceID: "stopped-ok", Running: false, Created: old},
		{ContainerID: "c6", WorkspaceID: "starting", Running: true, Created: fresh},
		{ContainerID: "c7", WorkspaceID: "deleted", Running: true, Created: old},
		{ContainerID: "c8", WorkspaceID: "unknown-old", Running: true, Created: old},
		{ContainerID: "c9", WorkspaceID: "unknown-fresh", Running: true, Created: fresh},
		{ContainerID: "c10", WorkspaceID: "unknown-legacy", Running: true, Created: old, Legacy: true},
	}
	got := Diff(wss, observed, now, time.Minute)
	want := map[string]Fix{
		"run-gone":            {Kind: FixRecordGone, WorkspaceID: "run-gone", Detail: "container_gone"},
		"run-dead":            {Kind: FixRecordGone, WorkspaceID: "run-dead", ContainerID: "c3", Detail: "container_exited"},
		"stopped-but-running": {Kind: FixStopStray, WorkspaceID: "stopped-but-running", ContainerID: "c4"},
		"deleted":             {Kind: FixRemoveOrphan, WorkspaceID: "deleted", ContainerID: "c7"},
		"unknown-old":         {Kind: FixRemoveOrphan, WorkspaceID: "unknown-old", ContainerID: "c8"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d fixes %+v, want %d", len(got), got, len(want))
	}
	for _, f := range got {
		if want[f.WorkspaceID] != f {
			t.Errorf("fix %+v, want %+v", f, want[f.WorkspaceID])
		}
	}
}
