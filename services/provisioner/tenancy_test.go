package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/dockertest"
	"github.com/berthdev/berth/services/provisioner/internal/docker"
)

// TestTwoInstallationsLeaveEachOtherAlone: a second installation on the
// same engine (a test run beside a running stack) sweeps for orphans every
// second. It used to remove the first one's running workspaces: they carry
// the workspace label and its log does not know them.
func TestTwoInstallationsLeaveEachOtherAlone(t *testing.T) {
	a, b := newWorld(t), newWorld(t)
	a.startProvisioner()
	id := a.create("mine", dockertest.DemoImage, true)
	ws := a.waitStatus(id, events.StatusRunning, 30*time.Second)
	start := time.Now()
	b.startProvisioner("--orphan-grace", "1ms", "--reconcile-interval", "200ms")
	time.Sleep(3 * time.Second) // many sweeps of b, all past its grace
	info, err := a.cli.ContainerInspect(context.Background(), ws.Endpoint.ContainerID)
	require.NoError(t, err, "the other installation removed the container")
	assert.True(t, info.State.Running, "the other installation stopped the container")
	assert.Equal(t, events.StatusRunning, a.state(id).Status)
	assert.Equal(t, a.installation, info.Config.Labels[docker.LabelInstallation])
	t.Logf("container of installation %s untouched by %s for %s", a.installation, b.installation, time.Since(start).Round(time.Millisecond))
}

// TestSpecChangeRecreatesContainer: a stopped workspace is changed (a
// project removed, lower limits) and started again. The old container was
// adopted as it was, so the API showed one thing and the engine ran
// another; now a changed spec means a new container, with the same home.
func TestSpecChangeRecreatesContainer(t *testing.T) {
	w := newWorld(t)
	w.startProvisioner()
	id := w.create("changing", dockertest.DemoImage, true, "course-101")
	first := w.waitStatus(id, events.StatusRunning, 30*time.Second)
	w.request(id, &events.StopRequested{})
	w.waitStatus(id, events.StatusStopped, 30*time.Second)

	projects, lower := []string{}, events.Resources{MemoryBytes: 128 << 20, MilliCPUs: 250, Pids: 64}
	w.request(id, &events.Updated{Projects: &projects, Resources: &lower})
	w.request(id, &events.StartRequested{})
	second := w.waitStatus(id, events.StatusRunning, 30*time.Second)
	assert.NotEqual(t, first.Endpoint.ContainerID, second.Endpoint.ContainerID, "a new container for the new spec")
	require.Len(t, w.containers(id), 1, "the old container is gone")
	info, err := w.cli.ContainerInspect(context.Background(), second.Endpoint.ContainerID)
	require.NoError(t, err)
	assert.EqualValues(t, 128<<20, info.HostConfig.Memory)
	assert.EqualValues(t, 250_000_000, info.HostConfig.NanoCPUs)
	assert.EqualValues(t, 64, *info.HostConfig.PidsLimit)
	for _, m := range info.Mounts {
		assert.NotContains(t, m.Destination, "course-101", "the removed project is still mounted")
	}
	assert.Contains(t, mountSources(info), docker.VolumeName(id), "same home volume")

	// Unchanged spec: the stopped container is started again, not replaced.
	w.request(id, &events.StopRequested{})
	w.waitStatus(id, events.StatusStopped, 30*time.Second)
	w.request(id, &events.StartRequested{})
	third := w.waitStatus(id, events.StatusRunning, 30*time.Second)
	assert.Equal(t, second.Endpoint.ContainerID, third.Endpoint.ContainerID)
}

func mountSources(info container.InspectResponse) []string {
	var out []string
	for _, m := range info.Mounts {
		out = append(out, m.Name)
	}
	return out
}

// TestCrashRestartedByBerthAfterValidation: no engine restart policy (it
// would resolve bind mounts again behind Berth's back). A workspace whose
// process dies is recorded as failed and started again by the provisioner,
// within seconds; one whose project folder was swapped for a symlink out
// of the projects root meanwhile is refused instead, and the host folder is
// never mounted.
func TestCrashRestartedByBerthAfterValidation(t *testing.T) {
	w := newWorld(t)
	require.NoError(t, os.MkdirAll(filepath.Join(w.projects, "team", "p2"), 0o755))
	secret := t.TempDir() // a host folder outside the projects root
	require.NoError(t, os.WriteFile(filepath.Join(secret, "shadow"), []byte("host secret"), 0o644))
	w.startProvisioner()
	ctx := context.Background()

	crashy := w.create("crashy", dockertest.DemoImage, true)
	ws := w.waitStatus(crashy, events.StatusRunning, 30*time.Second)
	info, err := w.cli.ContainerInspect(ctx, ws.Endpoint.ContainerID)
	require.NoError(t, err)
	assert.Equal(t, container.RestartPolicyDisabled, info.HostConfig.RestartPolicy.Name, "no engine-side restarts")
	require.NoError(t, w.cli.ContainerKill(ctx, ws.Endpoint.ContainerID, "KILL")) // as an OOM kill would
	killed := time.Now()
	require.Eventually(t, func() bool {
		s := w.state(crashy)
		return s.Status == events.StatusRunning && s.Version > ws.Version
	}, 20*time.Second, 25*time.Millisecond, "restarted by Berth")
	t.Logf("crashed workspace running again after %s", time.Since(killed).Round(time.Millisecond))
	evs, err := w.log.Read(ctx, crashy)
	require.NoError(t, err)
	var types []events.Type
	for _, e := range evs {
		types = append(types, e.Type)
	}
	assert.Contains(t, types, events.TypeFailed, "the crash is in the log")

	victim := w.create("victim", dockertest.DemoImage, true, "team/p2")
	ws = w.waitStatus(victim, events.StatusRunning, 30*time.Second)
	// From a workspace mounting "team", the folder is swapped for a symlink.
	require.NoError(t, os.RemoveAll(filepath.Join(w.projects, "team", "p2")))
	require.NoError(t, os.Symlink(secret, filepath.Join(w.projects, "team", "p2")))
	require.NoError(t, w.cli.ContainerKill(ctx, ws.Endpoint.ContainerID, "KILL"))
	// First the crash is recorded (container_exited), then the restart is
	// refused: the folder no longer resolves inside the projects root.
	require.Eventually(t, func() bool {
		s := w.state(victim)
		return s.Status == events.StatusError && s.Failure != nil && s.Failure.Code == "project_invalid"
	}, 20*time.Second, 25*time.Millisecond, "restart refused with project_invalid")
	for _, c := range w.containers(victim) {
		info, err := w.cli.ContainerInspect(ctx, c.ID)
		require.NoError(t, err)
		assert.False(t, info.State.Running, "started with a swapped mount")
		for _, m := range info.Mounts {
			assert.NotEqual(t, secret, m.Source)
		}
	}
}

// TestForgedWorkspaceRefused: events no API validated (written with a
// leaked credential, or old): no limits, an image outside the catalog. The
// provisioner records policy_violation and creates nothing.
func TestForgedWorkspaceRefused(t *testing.T) {
	w := newWorld(t)
	w.startProvisioner()
	forge := func(name, image string, r events.Resources) string {
		id := uuid.NewString()
		w.ids = append(w.ids, id)
		e, err := events.New(id, &events.Created{Name: name, Image: image, Owner: "alice", Projects: []string{}, Resources: r},
			events.Meta{Source: "forger", Actor: "user:root"}, time.Now())
		require.NoError(t, err)
		_, err = w.log.Append(context.Background(), e, 0)
		require.NoError(t, err)
		w.request(id, &events.StartRequested{})
		return id
	}
	for _, id := range []string{
		forge("unlimited", dockertest.DemoImage, events.Resources{}),
		forge("huge", dockertest.DemoImage, events.Resources{MemoryBytes: 1 << 40, MilliCPUs: 500, Pids: 128}),
		forge("unlisted", "berth/probe:latest", events.Resources{MemoryBytes: 256 << 20, MilliCPUs: 500, Pids: 128}),
	} {
		ws := w.waitStatus(id, events.StatusError, 30*time.Second)
		assert.Equal(t, "policy_violation", ws.Failure.Code, ws.Name)
		assert.Empty(t, w.containers(id), ws.Name)
	}
}

// TestRootInEverySpelling: an image whose USER is root in any spelling
// runs as the default non-root user (the check used to match only "root").
func TestRootInEverySpelling(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	base, err := w.cli.ContainerCreate(ctx, &container.Config{Image: dockertest.DemoImage}, nil, nil, nil, "")
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.cli.ContainerRemove(ctx, base.ID, container.RemoveOptions{Force: true}) })
	w.startProvisioner()
	for i, user := range []string{"root", "root:root", "0", "0:0", "00:0", "0:1000"} {
		ref := "berth-test/rootuser:" + string(rune('a'+i))
		_, err := w.cli.ContainerCommit(ctx, base.ID, container.CommitOptions{Reference: ref, Changes: []string{"USER " + user}})
		require.NoError(t, err)
		t.Cleanup(func() { _, _ = w.cli.ImageRemove(ctx, ref, image.RemoveOptions{Force: true}) })
		w.catalog(ref)
		id := w.create("root"+string(rune('a'+i)), ref, true)
		ws := w.waitStatus(id, events.StatusRunning, 30*time.Second)
		info, err := w.cli.ContainerInspect(ctx, ws.Endpoint.ContainerID)
		require.NoError(t, err)
		assert.Equal(t, "1000:1000", info.Config.User, "USER %s", user)
	}
}

// TestOutboundOff: with BERTH_WORKSPACE_OUTBOUND=false the workspace
// network is internal (no route out of it) and still serves Berth (the
// health check reaches the workspace); a network that lets workspaces out
// is refused rather than used.
func TestOutboundOff(t *testing.T) {
	w := newWorld(t)
	w.startProvisioner("--workspace-outbound=false")
	id := w.create("offline", dockertest.DemoImage, true)
	w.waitStatus(id, events.StatusRunning, 30*time.Second)
	nw, err := w.cli.NetworkInspect(context.Background(), w.network, network.InspectOptions{})
	require.NoError(t, err)
	assert.True(t, nw.Internal, "the workspace network lets workspaces out")
	assert.Equal(t, "false", nw.Options[docker.OptionICC])

	open := newWorld(t) // a network made with outbound on, then the setting turned off
	_, err = open.cli.NetworkCreate(context.Background(), open.network, network.CreateOptions{Driver: "bridge", Options: map[string]string{docker.OptionICC: "false"}})
	require.NoError(t, err)
	open.startProvisioner("--workspace-outbound=false")
	id = open.create("refused", dockertest.DemoImage, true)
	ws := open.waitStatus(id, events.StatusError, 30*time.Second)
	assert.Equal(t, "network_unsafe", ws.Failure.Code)
	assert.Empty(t, open.containers(id))
}
