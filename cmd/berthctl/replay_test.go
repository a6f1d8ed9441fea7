package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/berthdev/berth/pkg/events"
)

// TestCompareWorkspaces: the same workspace in the log and the API agrees;
// a field that differs, a workspace on one side only, are differences; a
// different version is a workspace that changed between the two reads.
func TestCompareWorkspaces(t *testing.T) {
	ws := func(id, name string, version uint64, status events.Status) events.Workspace {
		return events.Workspace{ID: id, Name: name, Owner: "alice", Status: status, Desired: events.DesiredRunning, Version: version}
	}
	body := func(w events.Workspace, url string) map[string]any {
		raw, _ := json.Marshal(w)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		m["url"] = url
		return m
	}
	same, changed, moved, onlyLog := ws("1", "a", 4, events.StatusRunning), ws("2", "b", 6, events.StatusRunning), ws("3", "c", 9, events.StatusStopped), ws("4", "d", 2, events.StatusCreated)
	liveChanged := body(changed, "u")
	liveChanged["status"] = "stopped"
	movedOn := moved
	movedOn.Version = 10
	diffs, n := compareWorkspaces([]events.Workspace{same, changed, moved, onlyLog},
		[]map[string]any{body(same, "u"), liveChanged, body(movedOn, "u"), body(ws("5", "e", 1, events.StatusCreated), "u")})
	if n != 1 {
		t.Errorf("%d moved, want 1", n)
	}
	text := strings.Join(diffs, "\n")
	for _, want := range []string{"b (2): status is running in the log, stopped in the API", "d (4): in the log, not served by the API", "5: served by the API, not in the log"} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in:\n%s", want, text)
		}
	}
	if len(diffs) != 3 {
		t.Errorf("%d differences, want 3:\n%s", len(diffs), text)
	}
}
