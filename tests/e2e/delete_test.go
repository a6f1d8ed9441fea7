package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// saveFile writes a file into a workspace's home through Traefik, as an
// IDE would.
func saveFile(t *testing.T, wsURL, token, name, content string) {
	t.Helper()
	req, _ := http.NewRequest("POST", wsURL+"files", strings.NewReader(url.Values{"name": {name}, "content": {content}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := quick.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusCreated, res.StatusCode)
}

// TestDeleteKeepArchiveOrPurge (issue: deleting). Before, a delete kept the
// home volume and nothing could remove it afterwards: restore answered
// no_archive, ?purge=true on the deleted workspace answered 202 and removed
// nothing. Now the choice is explicit (keep by default, archive, purge),
// admins list what deletes kept, and a purge removes it.
func TestDeleteKeepArchiveOrPurge(t *testing.T) {
	s := newStack(t)
	admin, alice := s.token("root", "admin"), s.token("alice", "user")
	status, b, _ := call(t, "POST", "http://"+s.api+"/api/v1/images", admin, map[string]any{"ref": "berth/workspace-demo:latest"})
	require.Equal(t, 201, status, "%s", b)
	ctx := context.Background()
	volume := func(id string) bool { _, err := s.cli.VolumeInspect(ctx, "berth-home-"+id); return err == nil }
	del := func(id, query string) {
		status, b, _ := call(t, "DELETE", "http://"+s.api+"/api/v1/workspaces/"+id+query, alice, nil)
		require.Equal(t, http.StatusAccepted, status, "delete%s: %s", query, b)
	}
	leftovers := func() []string {
		_, b, _ := call(t, "GET", "http://"+s.api+"/api/v1/workspaces?volume_kept=true", admin, nil)
		var out struct{ Workspaces []wsView }
		require.NoError(t, json.Unmarshal(b, &out), "%s", b)
		var ids []string
		for _, w := range out.Workspaces {
			ids = append(ids, w.ID)
		}
		return ids
	}

	// keep (the default): the volume stays and is listed; a purge removes it.
	kept := s.launch(alice)
	until(t, 30*time.Second, "workspace through Traefik", func() bool { code, _ := get(t, kept.URL, alice); return code == 200 })
	saveFile(t, kept.URL, alice, "notes.md", "keep me")
	del(kept.ID, "")
	s.await(alice, kept.ID, "deleted", 30*time.Second)
	assert.True(t, volume(kept.ID), "a plain delete keeps the home volume")
	assert.Contains(t, leftovers(), kept.ID)
	del(kept.ID, "?data=purge")
	until(t, 30*time.Second, "kept volume purged", func() bool { return !volume(kept.ID) })
	s.await(alice, kept.ID, "deleted", 30*time.Second)
	assert.NotContains(t, leftovers(), kept.ID)
	status, b, _ = call(t, "DELETE", "http://"+s.api+"/api/v1/workspaces/"+kept.ID+"?data=maybe", alice, nil)
	assert.Equal(t, http.StatusBadRequest, status, "%s", b)

	// archive: archived and verified, then removed; an admin restores it.
	status, b, _ = call(t, "POST", "http://"+s.api+"/api/v1/workspaces", alice, map[string]any{"name": "alice--thesis"})
	require.Equal(t, 201, status, "%s", b)
	var archived wsView
	require.NoError(t, json.Unmarshal(b, &archived))
	s.lifecycle(alice, archived.ID, "start")
	until(t, 30*time.Second, "workspace through Traefik", func() bool { code, _ := get(t, archived.URL, alice); return code == 200 })
	saveFile(t, archived.URL, alice, "thesis.md", "chapter two")
	del(archived.ID, "?data=archive")
	s.await(alice, archived.ID, "deleted", 60*time.Second)
	assert.False(t, volume(archived.ID), "the volume goes once the archive is verified")
	assert.NotContains(t, leftovers(), archived.ID)
	status, b, _ = call(t, "POST", "http://"+s.api+"/api/v1/workspaces/"+archived.ID+"/restore", admin, nil)
	require.Equal(t, http.StatusAccepted, status, "%s", b)
	s.await(alice, archived.ID, "stopped", 60*time.Second)
	s.lifecycle(alice, archived.ID, "start")
	until(t, 30*time.Second, "restored workspace through Traefik", func() bool { code, _ := get(t, archived.URL, alice); return code == 200 })
	code, body := get(t, archived.URL+"files/thesis.md", alice)
	assert.Equal(t, 200, code)
	assert.Equal(t, "chapter two", body)

	// purge: everything goes at once.
	del(archived.ID, "?data=purge")
	s.await(alice, archived.ID, "deleted", 30*time.Second)
	assert.False(t, volume(archived.ID))
	assert.Empty(t, leftovers())
}
