package main

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	desktopImage = "berth/workspace-desktop:latest"
	jupyterImage = "berth/workspace-jupyter:latest"
)

// TestLaunchChoosesTheImage: users launch the default image (their home
// workspace) and the images an admin made launchable, one workspace per
// user and image; an image that is not launchable is refused before
// anything is created; admins change what is launchable and the default,
// each an event.
func TestLaunchChoosesTheImage(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI("--dev-tokens", "--quota-workspaces", "0", "--quota-running", "0")
	admin, alice, bob := e.token("root", "admin"), e.token("alice", "user"), e.token("bob", "user")
	a.addImage(admin, demoImage)
	a.addImage(admin, desktopImage)
	r := a.do("POST", "/api/v1/images", admin, map[string]any{"ref": jupyterImage, "description": "Jupyter", "launchable": true})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	assert.Equal(t, true, r.json(t)["launchable"])

	launch := func(token string, body map[string]any) resp {
		t.Helper()
		if body == nil {
			return a.do("POST", "/api/v1/workspaces/launch", token, nil) // no body at all
		}
		return a.do("POST", "/api/v1/workspaces/launch", token, body)
	}
	launched := func(r resp) (name, image, id string) {
		t.Helper()
		require.Contains(t, []int{http.StatusOK, http.StatusCreated, http.StatusAccepted}, r.Status, "%s", r.Body)
		return r.str(t, "name"), r.str(t, "image"), r.str(t, "id")
	}

	// Not launchable: refused, nothing made; the same for a create.
	expectProblem(t, launch(alice, map[string]any{"image": desktopImage}), http.StatusForbidden, "image_not_launchable")
	expectProblem(t, a.do("POST", "/api/v1/workspaces", alice, map[string]any{"name": "alice--d", "image": desktopImage}), http.StatusForbidden, "image_not_launchable")
	expectProblem(t, launch(alice, map[string]any{"image": "berth/nope:1"}), http.StatusUnprocessableEntity, "validation_failed")
	assert.Empty(t, a.do("GET", "/api/v1/workspaces", alice, nil).json(t)["workspaces"], "a refused launch made a workspace")

	// Launchable: a workspace of its own, found again by the next launch.
	name, image, id := launched(launch(alice, map[string]any{"image": jupyterImage}))
	assert.Equal(t, "alice--jupyter", name)
	assert.Equal(t, jupyterImage, image)
	_, _, again := launched(launch(alice, map[string]any{"image": jupyterImage}))
	assert.Equal(t, id, again, "one workspace per user and image")
	name, image, _ = launched(launch(alice, nil))
	assert.Equal(t, "alice", name, "the home workspace")
	assert.Equal(t, demoImage, image, "of the configured default")
	expectProblem(t, launch(alice, map[string]any{"name": "alice", "image": jupyterImage}), http.StatusConflict, "image_mismatch")

	// Admins: only they change the catalog; nothing to change is an error.
	ref := "/api/v1/images/" + url.PathEscape(desktopImage)
	expectProblem(t, a.do("PATCH", ref, alice, map[string]any{"launchable": true}), http.StatusForbidden, "forbidden")
	expectProblem(t, a.do("PATCH", ref, admin, map[string]any{}), http.StatusUnprocessableEntity, "validation_failed")
	expectProblem(t, a.do("PATCH", "/api/v1/images/"+url.PathEscape("berth/nope:1"), admin, map[string]any{"launchable": true}), http.StatusNotFound, "image_not_found")
	r = a.do("PATCH", ref, admin, map[string]any{"launchable": true})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	name, _, _ = launched(launch(alice, map[string]any{"image": desktopImage}))
	assert.Equal(t, "alice--desktop", name)
	require.Equal(t, http.StatusCreated, a.do("POST", "/api/v1/workspaces", alice, map[string]any{"name": "alice--d2", "image": desktopImage}).Status)

	// A new default: the next user's home workspace gets it; alice's home
	// keeps its image, and her Jupyter workspace stays hers.
	r = a.do("PATCH", "/api/v1/images/"+url.PathEscape(jupyterImage), admin, map[string]any{"default": true})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	assert.Equal(t, jupyterImage, a.do("GET", "/api/v1/images", bob, nil).str(t, "default"))
	name, image, _ = launched(launch(bob, nil))
	assert.Equal(t, "bob", name)
	assert.Equal(t, jupyterImage, image)
	name, _, _ = launched(launch(bob, map[string]any{"image": jupyterImage}))
	assert.Equal(t, "bob", name, "the home workspace runs that image")
	_, _, again = launched(launch(alice, map[string]any{"image": jupyterImage}))
	assert.Equal(t, id, again)

	// Removing the default goes back to the configured one.
	require.Equal(t, http.StatusNoContent, a.do("DELETE", "/api/v1/images/"+url.PathEscape(jupyterImage), admin, nil).Status)
	assert.Equal(t, demoImage, a.do("GET", "/api/v1/images", bob, nil).str(t, "default"))

	// The dashboard offers what alice may launch besides her home.
	res := a.page("POST", "/ui/signin/dev", url.Values{"sub": {"alice"}, "role": {"user"}}, "Sec-Fetch-Site", "same-origin")
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	var cookie string
	for _, c := range res.Cookies() {
		if c.Name == "berth_session" {
			cookie = c.Value
		}
	}
	page := readAll(t, a.page("GET", "/", nil, "Cookie", "berth_session="+cookie))
	assert.Contains(t, page, `data-launch="`+desktopImage+`"`)
	assert.NotContains(t, page, `data-launch="`+demoImage+`"`, "the default is the Launch workspace button")
}
