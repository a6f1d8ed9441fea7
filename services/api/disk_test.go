package main

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDiskLimits: every workspace gets a disk limit: the installation's
// default (BERTH_DEFAULT_DISK), its image's profile default, or an admin's
// override, each within BERTH_MAX_DISK; users cannot pick one.
func TestDiskLimits(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI("--default-disk", "3GiB", "--max-disk", "8GiB")
	admin, alice := e.token("root", "admin"), e.token("alice", "user")
	a.addImage(admin, demoImage)
	disk := func(r resp) any { return r.json(t)["resources"].(map[string]any)["disk_bytes"] }

	r := a.do("POST", "/api/v1/workspaces", admin, map[string]any{"name": "plain"})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	assert.EqualValues(t, 3<<30, disk(r), "the installation's default")
	plain := r.str(t, "id")

	r = a.do("POST", "/api/v1/images", admin, map[string]any{"ref": "example/big:1", "profile": map[string]any{"resources": map[string]any{"disk_bytes": 6 << 30}}})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	r = a.do("POST", "/api/v1/workspaces", admin, map[string]any{"name": "big", "image": "example/big:1"})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	assert.EqualValues(t, 6<<30, disk(r), "the image profile's default")

	r = a.do("POST", "/api/v1/workspaces", admin, map[string]any{"name": "override", "resources": map[string]any{"disk_bytes": 7 << 30}})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	assert.EqualValues(t, 7<<30, disk(r), "the admin's override")

	r = a.do("PATCH", wsPath(plain), admin, map[string]any{"resources": map[string]any{"disk_bytes": 5 << 30}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	assert.EqualValues(t, 5<<30, disk(r), "an update overrides it")

	for name, body := range map[string]map[string]any{
		"over the max": {"name": "huge", "resources": map[string]any{"disk_bytes": 9 << 30}},
		"too small":    {"name": "tiny", "resources": map[string]any{"disk_bytes": 1 << 20}},
		"negative":     {"name": "neg", "resources": map[string]any{"disk_bytes": -1}},
	} {
		r := a.do("POST", "/api/v1/workspaces", admin, body)
		expectProblem(t, r, http.StatusUnprocessableEntity, "validation_failed")
		assert.Contains(t, r.fieldCodes(t), "resources_out_of_bounds", name)
		assert.Equal(t, "resources.disk_bytes", r.json(t)["errors"].([]any)[0].(map[string]any)["field"], name)
	}
	r = a.do("POST", "/api/v1/images", admin, map[string]any{"ref": "example/huge:1", "profile": map[string]any{"resources": map[string]any{"disk_bytes": 9 << 30}}})
	expectProblem(t, r, http.StatusUnprocessableEntity, "validation_failed")
	assert.Equal(t, "profile.resources.disk_bytes", r.json(t)["errors"].([]any)[0].(map[string]any)["field"])

	r = a.do("POST", "/api/v1/workspaces", alice, map[string]any{"name": "alice", "resources": map[string]any{"disk_bytes": 8 << 30}})
	expectProblem(t, r, http.StatusForbidden, "forbidden")
}
