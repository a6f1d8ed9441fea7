package docker

import (
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

func TestTaskIP(t *testing.T) {
	task := swarm.Task{NetworksAttachments: []swarm.NetworkAttachment{
		{Network: swarm.Network{ID: "ingress"}, Addresses: []string{"10.0.0.5/24"}},
		{Network: swarm.Network{ID: "ws"}, Addresses: []string{"10.0.7.3/24"}},
		{Network: swarm.Network{ID: "bad"}, Addresses: []string{"not-an-address"}},
	}}
	for netID, want := range map[string]string{"ws": "10.0.7.3", "ingress": "10.0.0.5", "bad": "", "absent": ""} {
		if got := taskIP(task, netID); got != want {
			t.Errorf("taskIP(%s) = %q, want %q", netID, got, want)
		}
	}
}

func TestEndedAndNewest(t *testing.T) {
	for _, s := range []swarm.TaskState{swarm.TaskStateComplete, swarm.TaskStateShutdown, swarm.TaskStateFailed, swarm.TaskStateRejected, swarm.TaskStateOrphaned, swarm.TaskStateRemove} {
		if !ended(s) {
			t.Errorf("%s: want ended", s)
		}
	}
	for _, s := range []swarm.TaskState{swarm.TaskStateNew, swarm.TaskStatePending, swarm.TaskStateAssigned, swarm.TaskStatePreparing, swarm.TaskStateStarting, swarm.TaskStateRunning} {
		if ended(s) {
			t.Errorf("%s: a task that may still run counts as ended", s)
		}
	}
	now := time.Now()
	tasks := []swarm.Task{{ID: "old"}, {ID: "new"}, {ID: "mid"}}
	tasks[0].CreatedAt, tasks[1].CreatedAt, tasks[2].CreatedAt = now.Add(-time.Hour), now, now.Add(-time.Minute)
	if got := newest(tasks).ID; got != "new" {
		t.Fatalf("newest = %s", got)
	}
}
