package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestImageProfileOnRealStack: an image whose IDE listens elsewhere, runs
// as another user, keeps its path prefix and is checked over TCP runs as
// its catalog profile says, and is served through Traefik.
func TestImageProfileOnRealStack(t *testing.T) {
	s := newStack(t)
	admin := s.token("root", "admin")
	// The demo image again, under a second tag, with a profile.
	require.NoError(t, s.cli.ImageTag(context.Background(), "berth/workspace-demo:latest", "berth/workspace-demo:profiled"))
	t.Cleanup(func() {
		_, _ = s.cli.ImageRemove(context.Background(), "berth/workspace-demo:profiled", image.RemoveOptions{})
	})
	status, b, _ := call(t, "POST", "http://"+s.api+"/api/v1/images", admin, map[string]any{"ref": "berth/workspace-demo:profiled", "profile": map[string]any{
		"port": 9090, "env": map[string]string{"PORT": "9090"}, "health": "tcp", "prefix": "keep", "home": "/home/dev", "user": "2000:2000",
		"activity": "traffic"}})
	require.Equal(t, http.StatusCreated, status, "%s", b)
	status, b, _ = call(t, "POST", "http://"+s.api+"/api/v1/workspaces", admin, map[string]any{"name": "prof", "owner": "alice", "image": "berth/workspace-demo:profiled"})
	require.Equal(t, http.StatusCreated, status, "%s", b)
	var ws wsView
	require.NoError(t, json.Unmarshal(b, &ws))
	alice := s.token("alice", "user")
	s.lifecycle(alice, ws.ID, "start")
	s.await(alice, ws.ID, "running", 30*time.Second)
	var page string
	until(t, 10*time.Second, "the workspace through Traefik", func() bool {
		var code int
		code, page = get(t, ws.URL, alice)
		return code == http.StatusOK
	})
	assert.Contains(t, page, "Workspace prof")

	list, err := s.cli.ContainerList(context.Background(), container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "berth.workspace.id="+ws.ID))})
	require.NoError(t, err)
	require.Len(t, list, 1)
	info, err := s.cli.ContainerInspect(context.Background(), list[0].ID)
	require.NoError(t, err)
	assert.Equal(t, "2000:2000", info.Config.User)
	assert.True(t, slices.Contains(info.Config.Env, "PORT=9090"), "%v", info.Config.Env)
	assert.True(t, slices.Contains(info.Config.Env, "HOME=/home/dev"), "%v", info.Config.Env)
	assert.True(t, slices.ContainsFunc(info.Mounts, func(m container.MountPoint) bool { return m.Destination == "/home/dev" && m.Type == "volume" }), "%v", info.Mounts)
	status, b, _ = call(t, "GET", "http://"+s.api+"/api/v1/workspaces/"+ws.ID, alice, nil)
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, string(b), `"port":9090`, "the endpoint is the profile's port")
}
