package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/dockertest"
	"github.com/berthdev/berth/pkg/platform/wsurl"
	"github.com/berthdev/berth/services/provisioner/internal/app"
	"github.com/berthdev/berth/services/provisioner/internal/docker"
)

// createLimited defines and starts a workspace with a disk limit.
func (w *world) createLimited(name string, disk int64) string {
	w.t.Helper()
	id := uuid.NewString()
	w.ids = append(w.ids, id)
	e, err := events.New(id, &events.Created{Name: name, Image: dockertest.DemoImage, Owner: "alice", Projects: []string{},
		Resources: events.Resources{MemoryBytes: 256 << 20, MilliCPUs: 500, Pids: 128, DiskBytes: disk}}, events.Meta{Source: "test", Actor: "user:test"}, time.Now())
	require.NoError(w.t, err)
	_, err = w.log.Append(context.Background(), e, 0)
	require.NoError(w.t, err)
	w.request(id, &events.StartRequested{})
	return id
}

// writeHome writes n files of size bytes into the workspace's home volume,
// as its IDE would.
func writeHome(t *testing.T, ws events.Workspace, n, size int) {
	t.Helper()
	for i := range n {
		res, err := http.PostForm("http://"+ws.Endpoint.IP+":8080"+wsurl.PathPrefix(ws.Name)+"/files",
			url.Values{"name": {fmt.Sprintf("fill-%d.bin", i)}, "content": {strings.Repeat("y", size)}})
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusCreated, res.StatusCode)
	}
}

// writeLayer writes a file of size bytes into the container's writable
// layer (outside every volume).
func writeLayer(t *testing.T, w *world, cid string, size int) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "layer-fill.bin", Mode: 0o644, Size: int64(size)}))
	_, err := tw.Write(bytes.Repeat([]byte("z"), size))
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	require.NoError(t, w.cli.CopyToContainer(context.Background(), cid, "/", &buf, container.CopyToContainerOptions{}))
}

// TestDiskQuotaStopsTheWorkspace: `yes > ~/fill` reproduced small: a
// workspace with a 4 MiB limit writes 2 MiB into its writable layer and
// 3.5 MiB into its home (each under the limit, both together over it). The
// provisioner warns it (disk_warning), then stops it with
// disk_quota_exceeded; its neighbour keeps running and the log keeps
// taking events. Before disk limits nothing measured or stopped it.
func TestDiskQuotaStopsTheWorkspace(t *testing.T) {
	w := newWorld(t)
	w.startProvisioner("--disk-interval", "200ms", "--disk-grace", "0s", "--max-disk", "1GiB", "--stop-drain", "0s")
	hog := w.createLimited("hog", 4<<20)
	neighbour := w.createLimited("neighbour", 0) // defined before disk limits: BERTH_MAX_DISK
	hws := w.waitStatus(hog, events.StatusRunning, 30*time.Second)
	w.waitStatus(neighbour, events.StatusRunning, 30*time.Second)

	writeLayer(t, w, hws.Endpoint.ContainerID, 2<<20)
	writeHome(t, hws, 4, 900<<10)

	ws := w.waitStatus(hog, events.StatusError, 30*time.Second)
	require.Equal(t, "disk_quota_exceeded", ws.Failure.Code, ws.Failure.Message)
	assert.True(t, ws.Failure.Retryable)
	assert.Contains(t, ws.Failure.Message, "4 MiB disk limit")
	evs, err := w.log.Read(context.Background(), hog)
	require.NoError(t, err)
	var warning *events.DiskWarning
	for _, e := range evs {
		if e.Type == events.TypeDiskWarning {
			p, err := e.Payload()
			require.NoError(t, err)
			warning = p.(*events.DiskWarning)
		}
	}
	require.NotNil(t, warning, "stopped without a warning first")
	assert.EqualValues(t, 4<<20, warning.LimitBytes)
	assert.GreaterOrEqual(t, warning.UsedBytes, int64(4<<20)*9/10, "writable layer and home are counted together")
	require.Eventually(t, func() bool {
		info, err := w.cli.ContainerInspect(context.Background(), hws.Endpoint.ContainerID)
		return err == nil && !info.State.Running
	}, 30*time.Second, 50*time.Millisecond, "the container over its limit still runs")

	// The neighbour is untouched, and the log and the provisioner still work.
	nws := w.state(neighbour)
	assert.Equal(t, events.StatusRunning, nws.Status)
	assert.Nil(t, nws.DiskWarning)
	info, err := w.cli.ContainerInspect(context.Background(), nws.Endpoint.ContainerID)
	require.NoError(t, err)
	assert.True(t, info.State.Running)
	w.request(neighbour, &events.StopRequested{})
	w.waitStatus(neighbour, events.StatusStopped, 30*time.Second)
}

// TestWorkspaceLogsRotated: every workspace container's log is rotated by
// the engine as Berth says (json-file, BERTH_WORKSPACE_LOG_MAX_FILES files
// of BERTH_WORKSPACE_LOG_MAX_SIZE), whatever the engine's own defaults
// (this test's engine rotates at 10m × 3 by daemon.json; an engine without
// log-opts does not rotate at all): `yes` on stdout no longer fills the
// host. The hard size limit is asked for only where the storage driver has
// one.
func TestWorkspaceLogsRotated(t *testing.T) {
	w := newWorld(t)
	w.startProvisioner("--workspace-log-max-size", "2MiB", "--workspace-log-max-files", "2")
	id := w.createLimited("chatty", 1<<30)
	ws := w.waitStatus(id, events.StatusRunning, 30*time.Second)
	info, err := w.cli.ContainerInspect(context.Background(), ws.Endpoint.ContainerID)
	require.NoError(t, err)
	lc := info.HostConfig.LogConfig
	assert.Equal(t, "json-file", lc.Type)
	assert.Equal(t, map[string]string{"max-size": "2048k", "max-file": "2"}, lc.Config)
	eng, err := w.cli.Info(context.Background())
	require.NoError(t, err)
	if docker.HardLimitSupported(eng.Driver, eng.DriverStatus) && info.HostConfig.StorageOpt != nil {
		assert.Equal(t, fmt.Sprint(1<<30), info.HostConfig.StorageOpt["size"])
	} else {
		assert.Empty(t, info.HostConfig.StorageOpt, "storage driver %s has no size limit", eng.Driver)
	}
}

// TestHostGuardRefusesStarts: with less free space than BERTH_MIN_FREE_DISK
// on a watched disk, a start is recorded as failed (host_disk_low) and
// nothing is created: no container, no home volume. With room again the
// same workspace starts.
func TestHostGuardRefusesStarts(t *testing.T) {
	w := newWorld(t)
	dir := t.TempDir()
	_, stop := w.startProvisioner("--min-free-disk", "100%", "--disk-guard-paths", dir)
	id := w.createLimited("crowded", 0)
	ws := w.waitStatus(id, events.StatusError, 30*time.Second)
	require.Equal(t, "host_disk_low", ws.Failure.Code)
	assert.Contains(t, ws.Failure.Message, "BERTH_MIN_FREE_DISK=100%")
	assert.Contains(t, ws.Failure.Message, "nothing was created")
	assert.Empty(t, w.containers(id))
	_, err := w.cli.VolumeInspect(context.Background(), docker.VolumeName(id))
	assert.True(t, cerrdefs.IsNotFound(err), "home volume created: %v", err)
	stop()

	w.startProvisioner("--min-free-disk", "1KiB", "--disk-guard-paths", dir)
	w.request(id, &events.StartRequested{})
	w.waitStatus(id, events.StatusRunning, 30*time.Second)
}

// TestDiskMeasuredWhileTheEngineIsBusy: engines before Docker 23 refuse a
// disk-usage call while another runs (`docker system df`, a monitoring
// agent, a second provisioner; a build makes each one slow). Reproduced on
// Docker 20.10: with two other callers busy, the measurement failed with
// "a disk usage operation is already running", so the watch measured
// nothing and a workspace over its limit ran on (the CI failure of
// TestDiskQuotaStopsTheWorkspace). Now every measurement beside them has
// the fresh writable layer and the home's size (fresh, or the last one
// measured, said by app.ErrHomeStale).
func TestDiskMeasuredWhileTheEngineIsBusy(t *testing.T) {
	w := newWorld(t)
	w.startProvisioner("--disk-interval", "0")
	id := w.createLimited("measured", 64<<20)
	ws := w.waitStatus(id, events.StatusRunning, 30*time.Second)
	writeHome(t, ws, 2, 900<<10)
	rt := docker.New(w.cli, docker.Options{Network: w.network, DiskBusyWait: 300 * time.Millisecond}).Scoped(w.installation)
	ctx := context.Background()
	var first map[string]app.DiskUse
	require.Eventually(t, func() bool { // a call cancelled by an earlier test may still run in the engine
		var err error
		first, err = rt.DiskUsage(ctx)
		return err == nil
	}, 10*time.Second, 100*time.Millisecond, "a quiet engine measures the homes")
	home := first[id].Home
	require.GreaterOrEqual(t, home, int64(1<<20), "the home volume is measured")
	writeLayer(t, w, ws.Endpoint.ContainerID, 2<<20)

	busy, cancel := context.WithCancel(ctx)
	var others sync.WaitGroup
	for range 2 {
		others.Add(1)
		go func() {
			defer others.Done()
			for busy.Err() == nil {
				_, _ = w.cli.DiskUsage(busy, types.DiskUsageOptions{Types: []types.DiskUsageObject{types.VolumeObject}})
			}
		}()
	}
	defer func() { cancel(); others.Wait() }()
	var stale int
	for range 8 {
		use, err := rt.DiskUsage(ctx)
		if err != nil {
			require.ErrorIs(t, err, app.ErrHomeStale)
			stale++
		}
		require.Contains(t, use, id, "measured nothing: %v", err)
		assert.GreaterOrEqual(t, use[id].Writable, int64(2<<20), "the writable layer is measured fresh")
		assert.Equal(t, home, use[id].Home)
	}
	t.Logf("%d of 8 measurements beside two other disk-usage callers used the last home sizes", stale)
}
