package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type wsView struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	URL    string `json:"url"`
}

func (s *stack) launch(token string) wsView {
	status, b, _ := call(s.t, "POST", "http://"+s.api+"/api/v1/workspaces/launch", token, nil)
	require.Contains(s.t, []int{200, 201, 202}, status, "%s", b)
	var ws wsView
	require.NoError(s.t, json.Unmarshal(b, &ws))
	return ws
}

func (s *stack) lifecycle(token, id, action string) {
	status, b, _ := call(s.t, "POST", "http://"+s.api+"/api/v1/workspaces/"+id+"/"+action, token, nil)
	require.Equal(s.t, http.StatusAccepted, status, "%s: %s", action, b)
}

// activity returns a reader of the activity bucket: a workspace's last
// recorded use, and whether there is one.
func (s *stack) activity() func(id string) (time.Time, bool) {
	s.t.Helper()
	nc := s.natsConn()
	s.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(s.t, err)
	kv, err := js.KeyValue(context.Background(), "berth_activity")
	require.NoError(s.t, err)
	return func(id string) (time.Time, bool) {
		e, err := kv.Get(context.Background(), id)
		if err != nil {
			return time.Time{}, false
		}
		at, err := time.Parse(time.RFC3339Nano, string(e.Value()))
		return at, err == nil
	}
}

func get(t testing.TB, url, token string, headers ...string) (int, string) {
	status, b, _ := call(t, "GET", url, token, nil, headers...)
	return status, string(b)
}

// TestThroughTraefik is the routing issue's end-to-end acceptance.
func TestThroughTraefik(t *testing.T) {
	s := newStack(t)
	admin, alice, bob := s.token("root", "admin"), s.token("alice", "user"), s.token("bob", "user")
	status, b, _ := call(t, "POST", "http://"+s.api+"/api/v1/images", admin, map[string]any{"ref": "berth/workspace-demo:latest"})
	require.Equal(t, 201, status, "%s", b)

	ws := s.launch(alice)
	assert.Equal(t, s.url("alice"), ws.URL, "the launch returns the URL Traefik serves")
	until(t, 30*time.Second, "alice's workspace through Traefik", func() bool {
		code, _ := get(t, ws.URL, alice)
		return code == 200
	})
	_, page := get(t, ws.URL, alice)
	assert.Contains(t, page, "Workspace alice")

	t.Run("the audit log links the observation to the request", func(t *testing.T) {
		var start, running historyEvent
		// The route exists from addressed on, so the first 200 may come
		// before the provisioner has appended running.
		until(t, 30*time.Second, "running in the history", func() bool {
			for _, e := range s.history(alice, ws.ID) {
				switch e.Type {
				case "berth.workspace.start_requested":
					start = e
				case "berth.workspace.running":
					running = e
				}
			}
			return running.ID != ""
		})
		require.NotEmpty(t, start.CorrelationID, "the request carries the API's request id")
		assert.Equal(t, start.ID, running.CausationID, "running answers the start request")
		assert.Equal(t, start.CorrelationID, running.CorrelationID, "one correlation id from the request to the container")
	})

	t.Run("admin allowed", func(t *testing.T) {
		code, _ := get(t, ws.URL, admin)
		assert.Equal(t, 200, code)
	})
	t.Run("other user forbidden", func(t *testing.T) {
		code, _ := get(t, ws.URL, bob)
		assert.Equal(t, 403, code)
	})
	t.Run("no credentials", func(t *testing.T) {
		code, body := get(t, ws.URL, "", "Accept", "text/html")
		assert.Equal(t, 401, code)
		assert.Contains(t, body, "Sign in")
	})
	t.Run("forged identity headers", func(t *testing.T) {
		code, _ := get(t, ws.URL, "", "X-Forwarded-User", "alice", "X-Berth-User", "alice", "X-Auth-Request-User", "alice")
		assert.Equal(t, 401, code)
		code, _ = get(t, ws.URL, bob, "X-Forwarded-User", "alice")
		assert.Equal(t, 403, code)
	})
	t.Run("session cookie, not passed on", func(t *testing.T) {
		// The browser flow: the API, behind the same Traefik, sets the cookie.
		status, _, h := call(t, "POST", "http://"+s.web+"/api/v1/auth/session", alice, nil)
		require.Equal(t, http.StatusCreated, status)
		res := http.Response{Header: h}
		var session string
		for _, c := range res.Cookies() {
			if c.Name == "berth_session" {
				session = c.Value
			}
		}
		require.NotEmpty(t, session)
		assert.NotContains(t, session, alice, "the cookie holds a session id, not the token")
		assert.Contains(t, h.Get("Set-Cookie"), "HttpOnly")
		// The workspace's own app gets its cookies exactly as sent (Go's
		// parser would drop pref={"a":1}) and its own Authorization header.
		code, body := get(t, ws.URL+"headers", "", "Cookie", `berth_session=`+session+`; pref={"a":1}; theme=dark`,
			"Authorization", "Basic aWRlOnNlY3JldA==")
		require.Equal(t, 200, code, body)
		assert.Contains(t, body, `pref={\"a\":1}; theme=dark`)
		assert.Contains(t, body, "Basic aWRlOnNlY3JldA==", "the IDE's own Authorization must reach it")
		assert.NotContains(t, body, "berth_session")
		assert.NotContains(t, body, session, "the session id never reaches the workspace")
		code, body = get(t, ws.URL+"headers", alice)
		require.Equal(t, 200, code)
		assert.NotContains(t, body, alice, "the platform token never reaches the workspace")
		// The cookie authenticates the API, for reads and same-origin changes.
		status, b, _ := call(t, "GET", "http://"+s.web+"/api/v1/me", "", nil, "Cookie", "berth_session="+session)
		require.Equal(t, http.StatusOK, status, "%s", b)
		// Logout with the cookie alone; the copied cookie then opens nothing.
		status, b, _ = call(t, "DELETE", "http://"+s.web+"/api/v1/auth/session", "", nil, "Cookie", "berth_session="+session, "Sec-Fetch-Site", "same-origin")
		require.Equal(t, http.StatusNoContent, status, "%s", b)
		code, _ = get(t, ws.URL, "", "Cookie", "berth_session="+session)
		assert.Equal(t, http.StatusUnauthorized, code, "a logged-out cookie opened the workspace")
	})
	t.Run("allowed requests are activity", func(t *testing.T) {
		lastUse := s.activity()
		until(t, 5*time.Second, "activity recorded", func() bool {
			at, ok := lastUse(ws.ID)
			return ok && time.Since(at) < time.Minute
		})
	})
	t.Run("bare path redirects", func(t *testing.T) {
		status, _, h := call(t, "GET", strings.TrimSuffix(ws.URL, "/"), alice, nil)
		assert.Equal(t, http.StatusMovedPermanently, status)
		assert.Equal(t, ws.URL, h.Get("Location"))
	})

	// Stop: the route goes away within a second.
	fast := &http.Client{Timeout: 300 * time.Millisecond}
	s.lifecycle(alice, ws.ID, "stop")
	took := until(t, 5*time.Second, "route gone after stop", func() bool {
		req, _ := http.NewRequest("GET", ws.URL, nil)
		req.Header.Set("Authorization", "Bearer "+alice)
		res, err := fast.Do(req)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 404
	})
	t.Logf("stop -> 404 in %s", took)
	assert.Less(t, took, time.Second, "stop -> 404")

	s.lifecycle(alice, ws.ID, "start")
	until(t, 30*time.Second, "route back after start", func() bool {
		code, _ := get(t, ws.URL, alice)
		return code == 200
	})

	// Router-sync restarted on an empty directory restores every route.
	s.restart("router-sync", func() {
		entries, err := os.ReadDir(s.dynamic)
		require.NoError(t, err)
		for _, e := range entries {
			require.NoError(t, os.Remove(s.dynamic+"/"+e.Name()))
		}
	})
	until(t, 30*time.Second, "routes restored by a fresh router-sync", func() bool {
		code, _ := get(t, ws.URL, alice)
		return code == 200
	})

	// Siblings: ab and abc never see each other's traffic.
	for _, name := range []string{"ab", "abc"} {
		status, b, _ := call(t, "POST", "http://"+s.api+"/api/v1/workspaces", admin, map[string]any{"name": name, "owner": "alice"})
		require.Equal(t, 201, status, "%s", b)
		var created wsView
		require.NoError(t, json.Unmarshal(b, &created))
		s.lifecycle(admin, created.ID, "start")
	}
	for _, name := range []string{"ab", "abc"} {
		until(t, 30*time.Second, name+" routed", func() bool {
			code, _ := get(t, s.url(name), alice)
			return code == 200
		})
	}
	for _, name := range []string{"ab", "abc"} {
		for _, path := range []string{"", "files/x", "headers"} {
			code, body := get(t, s.url(name)+path, alice)
			if path == "" {
				assert.Contains(t, body, "Workspace "+name+"<", "%s/%s", name, path)
			}
			assert.NotEqual(t, 502, code)
		}
	}
	_, abPage := get(t, s.url("ab"), alice)
	assert.NotContains(t, abPage, "Workspace abc")
}

// TestSubdomainMode: with BERTH_ROUTING_MODE=subdomain each workspace is its
// own host, <name>.<domain>, served at its root.
func TestSubdomainMode(t *testing.T) {
	s := newStack(t, "BERTH_ROUTING_MODE=subdomain", "BERTH_DOMAIN=berth.test")
	admin, alice, bob := s.token("root", "admin"), s.token("alice", "user"), s.token("bob", "user")
	status, b, _ := call(t, "POST", "http://"+s.api+"/api/v1/images", admin, map[string]any{"ref": "berth/workspace-demo:latest"})
	require.Equal(t, 201, status, "%s", b)
	ws := s.launch(alice)
	assert.Equal(t, "http://alice.berth.test:"+strings.Split(s.web, ":")[1]+"/", ws.URL)

	at := func(host, token string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+s.web+"/", nil)
		req.Host = host
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := quick.Do(req)
		if err != nil {
			return 0, ""
		}
		defer res.Body.Close()
		body := new(strings.Builder)
		_, _ = io.Copy(body, res.Body)
		return res.StatusCode, body.String()
	}
	until(t, 30*time.Second, "alice.berth.test routed", func() bool {
		code, _ := at("alice.berth.test", alice)
		return code == 200
	})
	_, page := at("alice.berth.test", alice)
	assert.Contains(t, page, "Workspace alice")
	code, _ := at("alice.berth.test", bob)
	assert.Equal(t, 403, code)
	code, _ = at("alice.berth.test", "")
	assert.Equal(t, 401, code)
	code, _ = at("someone.berth.test", alice)
	assert.Equal(t, 404, code)
}

// TestBusRestart: the API (which hosts the embedded NATS) restarts while the
// other services keep running; they reconnect, and the next launch is
// provisioned and routed as before. Nothing acknowledged is lost.
func TestBusRestart(t *testing.T) {
	s := newStack(t)
	admin, alice := s.token("root", "admin"), s.token("alice", "user")
	status, b, _ := call(t, "POST", "http://"+s.api+"/api/v1/images", admin, map[string]any{"ref": "berth/workspace-demo:latest"})
	require.Equal(t, 201, status, "%s", b)
	first := s.launch(alice)
	until(t, 30*time.Second, "alice routed", func() bool { code, _ := get(t, first.URL, alice); return code == 200 })

	s.restart("api", nil)
	s.waitReady("http://" + s.api + "/readyz")
	// Tokens survive: the dev secret is kept in the data dir.
	code, _ := get(t, first.URL, alice)
	assert.Equal(t, 200, code, "running workspace still served after the restart")

	bob := s.token("bob", "user")
	second := s.launch(bob)
	until(t, 60*time.Second, "bob provisioned and routed after the bus restart", func() bool {
		code, _ := get(t, second.URL, bob)
		return code == 200
	})
	_, body, _ := call(t, "GET", "http://"+s.api+"/api/v1/workspaces", admin, nil)
	assert.Contains(t, string(body), `"alice"`)
	assert.Contains(t, string(body), `"bob"`)
}
