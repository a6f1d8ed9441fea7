package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHostileInputs (issue: inputs and headers). Each case was accepted
// or answered outside problem JSON before.
func TestHostileInputs(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI()
	admin, alice := e.token("root", "admin"), e.token("alice", "user")
	a.addImage(admin, demoImage)

	t.Run("request ids come from Berth", func(t *testing.T) {
		// A 100 KB id was stored as the event's correlation id before.
		huge := strings.Repeat("x", 100<<10)
		r := a.do("POST", "/api/v1/workspaces", alice, map[string]any{"name": "alice--rid"}, "X-Request-Id", huge)
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
		rid := r.Header.Get("X-Request-Id")
		assert.Len(t, rid, 36, "Berth's own id (a UUID)")
		assert.Empty(t, r.Header.Get("X-Client-Request-Id"))
		h := a.do("GET", wsPath(r.str(t, "id"), "/events"), alice, nil)
		require.Equal(t, http.StatusOK, h.Status)
		assert.NotContains(t, string(h.Body), "xxxxxxxx")
		assert.Contains(t, string(h.Body), `"correlationid":"`+rid+`"`)

		// A well-formed id is echoed beside Berth's, never stored.
		r = a.do("GET", "/api/v1/me", alice, nil, "X-Request-Id", "client-123")
		assert.Equal(t, "client-123", r.Header.Get("X-Client-Request-Id"))
		assert.NotEqual(t, "client-123", r.Header.Get("X-Request-Id"))

		// A 1 MB header is refused by the server before it is read (a 503 and
		// a 1 MB log line before); the API keeps answering.
		req, _ := http.NewRequest("GET", a.base+"/api/v1/me", nil)
		req.Header.Set("X-Request-Id", strings.Repeat("y", 1<<20))
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, res.StatusCode)
			res.Body.Close()
		}
		assert.Equal(t, http.StatusOK, a.do("GET", "/api/v1/me", alice, nil).Status)
	})

	ws := a.do("POST", "/api/v1/workspaces", alice, map[string]any{"name": "alice--in"})
	require.Equal(t, http.StatusCreated, ws.Status)
	id := ws.str(t, "id")

	t.Run("an idle timeout past what a duration holds", func(t *testing.T) {
		r := a.do("PATCH", wsPath(id, "/lifecycle"), admin, `{"idle_timeout_seconds": 36028797018967568}`)
		expectProblem(t, r, http.StatusUnprocessableEntity, "validation_failed")
		assert.Contains(t, r.fieldCodes(t), "out_of_range")
	})
	t.Run("media types", func(t *testing.T) {
		for _, ct := range []string{"application/jsonfoo", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "json"} {
			r := a.do("POST", "/api/v1/workspaces", alice, `{"name":"alice--ct"}`, "Content-Type", ct)
			expectProblem(t, r, http.StatusUnsupportedMediaType, "unsupported_media_type")
		}
		r := a.do("POST", "/api/v1/workspaces", alice, `{"name":"alice--ct"}`, "Content-Type", "application/json; charset=utf-8")
		assert.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	})
	t.Run("bodies that are not an object", func(t *testing.T) {
		for _, body := range []string{"null", "[]", `"x"`, "1", "true", " null "} {
			expectProblem(t, a.do("POST", "/api/v1/workspaces/launch", alice, body), http.StatusBadRequest, "malformed_json")
			expectProblem(t, a.do("PATCH", wsPath(id), admin, body), http.StatusBadRequest, "malformed_json")
		}
	})
}
