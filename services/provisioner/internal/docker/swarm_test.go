package docker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/berthdev/berth/services/provisioner/internal/app"
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

// fakeServices answers ServiceList with svcs; nothing else is called.
type fakeServices struct {
	client.APIClient
	svcs []swarm.Service
}

func (f fakeServices) ServiceList(context.Context, swarm.ServiceListOptions) ([]swarm.Service, error) {
	return f.svcs, nil
}

// TestServiceMadeByHandIsRefused: a service carrying a workspace's labels
// that Berth could not have made (not replicated) is refused with a code,
// never dereferenced.
func TestServiceMadeByHandIsRefused(t *testing.T) {
	global := swarm.Service{ID: "s1", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "berth-x-00000000"},
		Mode: swarm.ServiceMode{Global: &swarm.GlobalService{}}}}
	w := NewSwarm(New(fakeServices{svcs: []swarm.Service{global}}, Options{}), []string{"p"}).Scoped("inst")
	_, err := w.service(context.Background(), "00000000-0000-4000-8000-000000000000")
	var f *app.Failure
	if !errors.As(err, &f) || f.Code != "service_invalid" {
		t.Fatalf("want service_invalid, got %v", err)
	}
	svc := &swarm.Service{ID: "s2", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "berth-y-00000000"}}}
	_, err = w.awaitTask(context.Background(), svc, app.Spec{Name: "y", ID: "00000000-0000-4000-8000-000000000001"})
	if !errors.As(err, &f) || f.Code != "service_invalid" {
		t.Fatalf("a service on no network of its own: want service_invalid, got %v", err)
	}
}

// TestServiceSpecRotatesLogs: a Swarm service carries the container mode's
// log rotation (the task's engine would otherwise use its own default) and
// no storage size option, which services do not have.
func TestServiceSpecRotatesLogs(t *testing.T) {
	w := NewSwarm(New(nil, Options{LogMaxBytes: 2 << 20, LogMaxFiles: 2}), []string{"berth-traefik"})
	if w.hardLimit(context.Background()) {
		t.Fatal("a Swarm service was given a storage size limit")
	}
	pids := int64(64)
	sh := shape{cfg: &container.Config{Image: "img", Labels: map[string]string{}},
		host: &container.HostConfig{Resources: container.Resources{PidsLimit: &pids},
			LogConfig: container.LogConfig{Type: LogDriver, Config: map[string]string{"max-size": "2048k", "max-file": "2"}}}}
	spec := w.serviceSpec(app.Spec{ID: "0b7e3c2a-5d4f-4f7e-9a51-2f0c6f1d8e21", Name: "n"}, sh, "net", 1, nil)
	d := spec.TaskTemplate.LogDriver
	if d == nil || d.Name != "json-file" || d.Options["max-size"] != "2048k" || d.Options["max-file"] != "2" {
		t.Fatalf("log driver %+v", d)
	}
}
