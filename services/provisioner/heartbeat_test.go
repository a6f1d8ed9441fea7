package main

import (
	"archive/tar"
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/activity"
	"github.com/berthdev/berth/pkg/platform/dockertest"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
)

// touch writes the heartbeat file into the container with mtime at.
func touch(t *testing.T, w *world, cid string, at time.Time) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: ".berth-heartbeat", Mode: 0o644, Uid: 1000, Gid: 1000, ModTime: at}))
	require.NoError(t, tw.Close())
	require.NoError(t, w.cli.CopyToContainer(context.Background(), cid, "/home/coder", &b, container.CopyToContainerOptions{}))
}

// TestHeartbeatFileIsActivity: the modification time of the workspace's
// heartbeat file becomes its last activity; a time in the future counts as
// now.
func TestHeartbeatFileIsActivity(t *testing.T) {
	w := newWorld(t)
	w.startProvisioner("--heartbeat-file", "/home/coder/.berth-heartbeat", "--heartbeat-interval", "50ms")
	id := w.create("beating", dockertest.DemoImage, true)
	ws := w.waitStatus(id, events.StatusRunning, 30*time.Second)
	l, err := eventlog.Open(context.Background(), natstest.Conn(t, w.nats), eventlog.Options{})
	require.NoError(t, err)
	tracker, err := activity.Open(context.Background(), l.JetStream(), time.Second, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	_, ok, err := tracker.LastSeen(context.Background(), id)
	require.NoError(t, err)
	assert.False(t, ok, "no file, no activity")

	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	touch(t, w, ws.Endpoint.ContainerID, at)
	require.Eventually(t, func() bool {
		seen, ok, _ := tracker.LastSeen(context.Background(), id)
		return ok && seen.Equal(at)
	}, 5*time.Second, 20*time.Millisecond)

	touch(t, w, ws.Endpoint.ContainerID, time.Now().Add(24*time.Hour))
	require.Eventually(t, func() bool {
		seen, ok, _ := tracker.LastSeen(context.Background(), id)
		return ok && seen.After(at) && !seen.After(time.Now())
	}, 5*time.Second, 20*time.Millisecond, "a future time is clamped to now")
}
