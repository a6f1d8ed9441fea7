package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/dockertest"
	"github.com/berthdev/berth/pkg/platform/enginestatus"
	"github.com/berthdev/berth/pkg/platform/wsurl"
	"github.com/berthdev/berth/services/provisioner/internal/app"
	"github.com/berthdev/berth/services/provisioner/internal/docker"
)

func httpGet(t *testing.T, u string) (int, string) {
	t.Helper()
	res, err := http.Get(u)
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestLifecycleOnRealEngine: start -> running and answering, with the
// hardened settings verified by inspect; stop; start again on the same
// container with the home file intact; delete.
func TestLifecycleOnRealEngine(t *testing.T) {
	w := newWorld(t)
	// The catalog entry declares one capability: it, and only it, comes back.
	w.catalog(dockertest.DemoImage, "NET_BIND_SERVICE")
	w.startProvisioner()
	id := w.create("lab", dockertest.DemoImage, true, "course-101")
	ws := w.waitStatus(id, events.StatusRunning, 30*time.Second)
	require.NotNil(t, ws.Endpoint)

	list := w.containers(id)
	require.Len(t, list, 1)
	info, err := w.cli.ContainerInspect(context.Background(), list[0].ID)
	require.NoError(t, err)
	assert.Equal(t, ws.Endpoint.ContainerID, info.ID)
	assert.Equal(t, id, info.Config.Labels[docker.LabelID])
	assert.Equal(t, "lab", info.Config.Labels[docker.LabelName])
	assert.Equal(t, "1000:1000", info.Config.User, "non-root user")
	hc := info.HostConfig
	assert.False(t, hc.Privileged)
	assert.Equal(t, []string{"ALL"}, []string(hc.CapDrop))
	assert.Equal(t, []string{"CAP_NET_BIND_SERVICE"}, []string(hc.CapAdd), "Docker writes capabilities with their CAP_ prefix")
	assert.Contains(t, hc.SecurityOpt, "no-new-privileges:true")
	assert.EqualValues(t, 256<<20, hc.Memory)
	assert.EqualValues(t, 500_000_000, hc.NanoCPUs)
	require.NotNil(t, hc.PidsLimit)
	assert.EqualValues(t, 128, *hc.PidsLimit)
	assert.Equal(t, container.RestartPolicyDisabled, hc.RestartPolicy.Name, "the provisioner restarts crashed workspaces itself")
	assert.Equal(t, w.network, string(hc.NetworkMode))
	assert.False(t, hc.NetworkMode.IsHost())
	assert.False(t, hc.PidMode.IsHost())
	assert.False(t, hc.IpcMode.IsHost())
	assert.Empty(t, hc.PortBindings, "no host ports")
	assert.Empty(t, hc.Binds, "mounts, not -v binds")
	var sawHome, sawProject bool
	for _, m := range info.Mounts {
		assert.NotContains(t, m.Source, "docker.sock")
		switch m.Destination {
		case "/home/coder":
			sawHome = m.Name == docker.VolumeName(id)
		case "/home/coder/project/course-101":
			sawProject = m.RW && strings.HasSuffix(m.Source, "course-101")
		}
	}
	assert.True(t, sawHome, "home volume mounted")
	assert.True(t, sawProject, "project bind-mounted read-write")

	base := "http://" + ws.Endpoint.IP + ":8080" + wsurl.PathPrefix("lab")
	status, page := httpGet(t, base+"/")
	require.Equal(t, 200, status)
	assert.Contains(t, page, "Workspace lab")
	assert.Contains(t, page, "course-101/README.md")
	res, err := http.PostForm(base+"/files", url.Values{"name": {"proof.txt"}, "content": {"still here"}})
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 201, res.StatusCode)

	w.request(id, &events.StopRequested{})
	w.waitStatus(id, events.StatusStopped, 30*time.Second)
	list = w.containers(id)
	require.Len(t, list, 1)
	assert.NotEqual(t, "running", list[0].State)

	w.request(id, &events.StartRequested{})
	ws = w.waitStatus(id, events.StatusRunning, 30*time.Second)
	assert.Equal(t, info.ID, ws.Endpoint.ContainerID, "same container after restart")
	_, body := httpGet(t, "http://"+ws.Endpoint.IP+":8080/files/proof.txt")
	assert.Equal(t, "still here", body)

	w.request(id, &events.DeleteRequested{})
	w.waitStatus(id, events.StatusDeleted, 30*time.Second)
	assert.Empty(t, w.containers(id))
	_, err = w.cli.VolumeInspect(context.Background(), docker.VolumeName(id))
	assert.NoError(t, err, "delete without purge keeps the home volume")
}

// TestSameStartTwiceOneContainer: two provisioners (or a redelivery) handle
// the same start at once: one container, one running event.
func TestSameStartTwiceOneContainer(t *testing.T) {
	w := newWorld(t)
	id := w.create("twice", dockertest.DemoImage, true)
	rt := w.runtime()
	// Three replicas (each its own projection and locks) race one start.
	var wg sync.WaitGroup
	for range 3 {
		prov := app.New(w.log.ConflictAs(app.ErrConflict), w.projection(), rt, slog.New(slog.DiscardHandler), app.Options{ProjectsRoot: w.projects})
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, prov.Handle(context.Background(), id, 0, false))
		}()
	}
	wg.Wait()
	w.waitStatus(id, events.StatusRunning, time.Second)
	assert.Len(t, w.containers(id), 1)
	evs, err := w.log.Read(context.Background(), id)
	require.NoError(t, err)
	running := 0
	for _, e := range evs {
		if e.Type == events.TypeRunning {
			running++
		}
	}
	assert.Equal(t, 1, running)
}

// TestAdoptsContainerAfterCrash: a provisioner that created the container
// but died before recording it; the next one adopts it.
func TestAdoptsContainerAfterCrash(t *testing.T) {
	w := newWorld(t)
	id := w.create("adopt", dockertest.DemoImage, true)
	// What the dead provisioner got done: the container exists and runs,
	// and it died before recording it.
	dead := app.New(crashBeforeRecord{}, w.projection(), w.runtime(), slog.New(slog.DiscardHandler), app.Options{ProjectsRoot: w.projects, Routing: wsurl.ModePath})
	require.Error(t, dead.Handle(context.Background(), id, 0, false))
	require.Len(t, w.containers(id), 1)
	first := w.containers(id)[0].ID
	assert.Equal(t, events.StatusStarting, w.state(id).Status, "nothing recorded yet")

	w.startProvisioner()
	ws := w.waitStatus(id, events.StatusRunning, 30*time.Second)
	assert.Equal(t, first, ws.Endpoint.ContainerID, "adopted, not recreated")
	assert.Len(t, w.containers(id), 1)
}

// crashBeforeRecord is a log whose appends never land: the process died.
type crashBeforeRecord struct{}

func (crashBeforeRecord) Append(context.Context, events.Envelope, uint64) (uint64, error) {
	return 0, errors.New("killed before recording")
}

// TestReconcilerRepairsRemovedContainer: a container removed by hand is
// recorded and, by the default restart policy, started again.
func TestReconcilerRepairsRemovedContainer(t *testing.T) {
	w := newWorld(t)
	w.startProvisioner()
	id := w.create("gone", dockertest.DemoImage, true)
	ws := w.waitStatus(id, events.StatusRunning, 30*time.Second)
	require.NoError(t, w.cli.ContainerRemove(context.Background(), ws.Endpoint.ContainerID, container.RemoveOptions{Force: true}))

	require.Eventually(t, func() bool {
		now := w.state(id)
		return now.Status == events.StatusRunning && now.Endpoint.ContainerID != ws.Endpoint.ContainerID
	}, 30*time.Second, 50*time.Millisecond)
	evs, err := w.log.Read(context.Background(), id)
	require.NoError(t, err)
	var types []events.Type
	for _, e := range evs {
		types = append(types, e.Type)
	}
	assert.Contains(t, types, events.TypeFailed, "the vanished container is in the audit log")
	assert.Len(t, w.containers(id), 1)
}

// TestFailuresAreRecorded: a missing image and a project folder removed
// behind the API's back become "failed" events a user can act on.
func TestFailuresAreRecorded(t *testing.T) {
	w := newWorld(t)
	w.startProvisioner()
	w.catalog("berth/not-built:1")
	missing := w.create("noimage", "berth/not-built:1", true)
	ws := w.waitStatus(missing, events.StatusError, 30*time.Second)
	assert.Equal(t, "image_missing", ws.Failure.Code)
	assert.Contains(t, ws.Failure.Message, "make images")

	badProject := w.create("noproject", dockertest.DemoImage, true, "does-not-exist")
	ws = w.waitStatus(badProject, events.StatusError, 30*time.Second)
	assert.Equal(t, "project_invalid", ws.Failure.Code)
	escape := w.create("escape", dockertest.DemoImage, true, "../etc")
	ws = w.waitStatus(escape, events.StatusError, 30*time.Second)
	assert.Equal(t, "project_invalid", ws.Failure.Code)
	assert.Empty(t, w.containers(escape))
}

// TestEngineUnreachable: with no engine the provisioner stays up, reports
// not ready, retries, then records a clear failure; no event is skipped.
func TestEngineUnreachable(t *testing.T) {
	w := newWorld(t)
	t.Setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
	addr, _ := w.startProvisioner("--max-deliver", "2")
	status, body := httpGet(t, "http://"+addr+"/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Contains(t, body, "docker")
	id := w.create("nodocker", dockertest.DemoImage, true)
	ws := w.waitStatus(id, events.StatusError, 30*time.Second)
	assert.Equal(t, "engine_unavailable", ws.Failure.Code)

	// The API learns it through the status board and refuses starts.
	board, err := enginestatus.Open(context.Background(), w.log.JetStream())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return errors.Is(board.Check(context.Background()), enginestatus.ErrEngineUnavailable)
	}, 10*time.Second, 50*time.Millisecond)
}

// TestProvisionerKilledMidLaunch: a provisioner dies after creating the
// container but before recording "running"; the next one adopts the
// container: one container, state converges.
func TestProvisionerKilledMidLaunch(t *testing.T) {
	w := newWorld(t)
	// This one never sees the workspace healthy, so it is stuck between
	// create and record when it is stopped.
	_, stopFirst := w.startProvisioner("--health-path", "/never-healthy")
	id := w.create("crash", dockertest.DemoImage, true)
	require.Eventually(t, func() bool { return len(w.containers(id)) == 1 }, 20*time.Second, 20*time.Millisecond)
	created := w.containers(id)[0].ID
	stopFirst()
	assert.Equal(t, events.StatusStarting, w.state(id).Status, "nothing recorded by the dead provisioner")

	w.startProvisioner()
	ws := w.waitStatus(id, events.StatusRunning, 30*time.Second)
	assert.Equal(t, created, ws.Endpoint.ContainerID, "adopted the container")
	assert.Len(t, w.containers(id), 1)
}

// TestOrphansRemovedOnlyAfterGrace: a labelled container the log does not
// know is removed once older than the grace period; an unlabelled one on
// the same network is never touched.
func TestOrphansRemovedOnlyAfterGrace(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	stray := "00000000-0000-0000-0000-00000000dead"
	w.ids = append(w.ids, stray)
	mk := func(labels map[string]string) string {
		c, err := w.cli.ContainerCreate(ctx, &container.Config{Image: dockertest.DemoImage, Labels: labels}, &container.HostConfig{}, nil, nil, "")
		require.NoError(t, err)
		t.Cleanup(func() { _ = w.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}) })
		require.NoError(t, w.cli.ContainerStart(ctx, c.ID, container.StartOptions{}))
		return c.ID
	}
	createdAt := time.Now()
	orphan := mk(map[string]string{docker.LabelID: stray, docker.LabelInstallation: w.installation})
	bystander := mk(map[string]string{"app": "not-berth"})

	// Docker reports creation to the second, so the grace period can look
	// up to 1 s shorter: 5 s grace, checked 2 s after creation.
	w.startProvisioner("--orphan-grace", "5s")
	time.Sleep(time.Until(createdAt.Add(2 * time.Second))) // sweeps ran inside the grace period
	_, err := w.cli.ContainerInspect(ctx, orphan)
	require.NoError(t, err, "young orphan kept during the grace period")
	require.Eventually(t, func() bool {
		_, err := w.cli.ContainerInspect(ctx, orphan)
		return err != nil
	}, 15*time.Second, 100*time.Millisecond, "orphan removed after the grace period")
	info, err := w.cli.ContainerInspect(ctx, bystander)
	require.NoError(t, err)
	assert.True(t, info.State.Running, "unlabelled containers are never touched")
}

// TestDefinedWorkspaceIsPrepared: a workspace defined without a start (an
// admin's, an LMS's) gets its container right away, created but not
// running; its first start starts that very container.
func TestDefinedWorkspaceIsPrepared(t *testing.T) {
	w := newWorld(t)
	w.startProvisioner()
	id := w.create("prepared", dockertest.DemoImage, false)
	var prepared container.Summary
	require.Eventually(t, func() bool {
		cs := w.containers(id)
		if len(cs) == 1 {
			prepared = cs[0]
		}
		return len(cs) == 1
	}, 30*time.Second, 50*time.Millisecond, "the defined workspace's container")
	assert.Equal(t, "created", prepared.State, "prepared, not started")
	assert.Equal(t, events.StatusCreated, w.state(id).Status, "nothing recorded: the workspace is as it was")

	w.request(id, &events.StartRequested{})
	w.waitStatus(id, events.StatusRunning, 60*time.Second)
	cs := w.containers(id)
	require.Len(t, cs, 1)
	assert.Equal(t, prepared.ID, cs[0].ID, "the start used the prepared container")
}

// TestAddressedBeforeHealthy: once a starting workspace's container runs
// and has its address, the provisioner records addressed (the workspace
// stays starting, with the endpoint router-sync routes), so Traefik loads
// the route while the IDE boots. Before, the route came only with running,
// and Traefik's reload was 63 ms of every launch. A start that then fails
// drops the address again.
func TestAddressedBeforeHealthy(t *testing.T) {
	w := newWorld(t)
	w.startProvisioner("--health-path", "/never", "--health-timeout", "3s")
	id := w.create("slow", dockertest.DemoImage, true)
	var addressed events.Workspace
	deadline := time.Now().Add(15 * time.Second)
	for addressed.Endpoint == nil {
		require.True(t, time.Now().Before(deadline), "no address recorded while the health check fails")
		if ws := w.state(id); ws.Status == events.StatusStarting {
			addressed = ws
		}
		time.Sleep(10 * time.Millisecond)
	}
	list := w.containers(id)
	require.Len(t, list, 1)
	info, err := w.cli.ContainerInspect(context.Background(), list[0].ID)
	require.NoError(t, err)
	assert.Equal(t, info.NetworkSettings.Networks[w.network].IPAddress, addressed.Endpoint.IP)
	assert.Equal(t, info.ID, addressed.Endpoint.ContainerID)
	assert.Equal(t, 8080, addressed.Endpoint.Port)

	ws := w.waitStatus(id, events.StatusError, 20*time.Second)
	require.NotNil(t, ws.Failure)
	assert.Equal(t, "health_timeout", ws.Failure.Code)
	assert.Nil(t, ws.Endpoint, "a failed start is not routed")
	evs, err := w.log.Read(context.Background(), id)
	require.NoError(t, err)
	var types []string
	for _, e := range evs {
		types = append(types, strings.TrimPrefix(string(e.Type), "berth.workspace."))
	}
	assert.Equal(t, []string{"created", "start_requested", "addressed", "failed"}, types, "one address per start, answering its request")
	assert.Equal(t, evs[1].ID, evs[2].CausationID)
}
