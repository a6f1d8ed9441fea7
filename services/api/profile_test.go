package main

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestImageProfiles: a catalog entry carries how its IDE runs; every
// field is checked with a stable code; a workspace of the image gets the
// profile's default resources.
func TestImageProfiles(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI()
	admin := e.token("root", "admin")
	jupyter := map[string]any{"ref": "example/jupyterlab:4", "description": "JupyterLab", "profile": map[string]any{
		"port": 8888, "health": "/api", "activity": "http:/api/status#last_activity", "busy": "http:/api/kernels#execution_state=busy",
		"prefix": "keep", "user": "1000:100",
		"home": "/home/jovyan", "command": []string{"start-notebook.py", "--ServerApp.token="},
		"env": map[string]string{"JUPYTER_ENABLE_LAB": "yes"}, "resources": map[string]any{"memory_bytes": 4 << 30},
	}}
	r := a.do("POST", "/api/v1/images", admin, jupyter)
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	profile := r.json(t)["profile"].(map[string]any)
	assert.EqualValues(t, 8888, profile["port"])
	assert.Equal(t, "keep", profile["prefix"])
	assert.Equal(t, "http:/api/kernels#execution_state=busy", profile["busy"])

	r = a.do("POST", "/api/v1/workspaces", admin, map[string]any{"name": "alice--lab", "owner": "alice", "image": "example/jupyterlab:4"})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	assert.EqualValues(t, 4<<30, r.json(t)["resources"].(map[string]any)["memory_bytes"], "the image's default memory")

	r = a.do("POST", "/api/v1/images", admin, map[string]any{"ref": "example/bad:1", "profile": map[string]any{
		"port": 0, "health": "healthz", "user": "0", "home": "/etc", "env": map[string]string{"BERTH_BASE_PATH": "/x"},
		"activity": "ping", "busy": "http:/api/kernels", "prefix": "rewrite", "resources": map[string]any{"memory_bytes": 1 << 50}}})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, "%s", r.Body)
	assert.ElementsMatch(t, []string{"invalid_health", "invalid_user", "invalid_home", "reserved_env", "invalid_activity", "invalid_busy", "invalid_prefix", "resources_out_of_bounds"}, r.fieldCodes(t))
	r = a.do("POST", "/api/v1/images", admin, map[string]any{"ref": "example/bad:2", "profile": map[string]any{"ports": 1}})
	assert.Equal(t, http.StatusBadRequest, r.Status, "an unknown profile field: %s", r.Body)
}

// TestLogsQueryRefused: a logs request with a bad query is refused before
// any provisioner is asked.
func TestLogsQueryRefused(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI()
	alice := e.token("alice", "user")
	for query, status := range map[string]int{"tail=abc": http.StatusBadRequest, "timestamps=yes": http.StatusBadRequest,
		"tail=0": http.StatusUnprocessableEntity, "tail=5001": http.StatusUnprocessableEntity} {
		r := a.do("GET", "/api/v1/workspaces/some-id/logs?"+query, alice, nil)
		assert.Equal(t, status, r.Status, "%s: %s", query, r.Body)
	}
	r := a.do("GET", "/api/v1/workspaces/some-id/logs", alice, nil)
	expectProblem(t, r, http.StatusNotFound, "workspace_not_found")
}
