package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const demoImage = "berth/workspace-demo:latest"

// TestLifecycleAndReplay drives create -> launch -> stop -> delete through
// HTTP, then starts a fresh API on the same log and requires the same state.
func TestLifecycleAndReplay(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI()
	admin, alice := e.token("root", "admin"), e.token("alice", "user")

	a.addImage(admin, demoImage)
	r := a.do("GET", "/api/v1/images", alice, nil)
	require.Equal(t, http.StatusOK, r.Status)
	assert.Contains(t, string(r.Body), demoImage)

	// Admin creates a workspace for bob with projects and resources.
	r = a.do("POST", "/api/v1/workspaces", admin, map[string]any{
		"name": "bob-lab", "description": "lab", "image": demoImage, "owner": "bob",
		"projects":  []string{"course-101", "course-102/lab1"},
		"resources": map[string]any{"memory_bytes": 1 << 30, "milli_cpus": 1000, "pids": 256},
	})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	bobID := r.str(t, "id")
	assert.Equal(t, "/api/v1/workspaces/"+bobID, r.Header.Get("Location"))
	assert.Equal(t, "created", r.str(t, "status"))

	// Alice launches: created from the default template and started.
	r = a.do("POST", "/api/v1/workspaces/launch", alice, nil)
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	id := r.str(t, "id")
	assert.Equal(t, "alice", r.str(t, "name"))
	assert.Equal(t, "starting", r.str(t, "status"))
	assert.Equal(t, "running", r.str(t, "desired"))
	assert.Equal(t, "http://berth.test:8000/workspace-alice/", r.str(t, "url"))
	res := r.json(t)["resources"].(map[string]any)
	assert.EqualValues(t, 2<<30, res["memory_bytes"])
	assert.EqualValues(t, 500, res["milli_cpus"])
	assert.EqualValues(t, 512, res["pids"])

	// Launch again: same workspace, nothing new in the log.
	r = a.do("POST", "/api/v1/workspaces/launch", alice, map[string]any{})
	require.Equal(t, http.StatusAccepted, r.Status, "%s", r.Body)
	assert.Equal(t, id, r.str(t, "id"))

	r = a.do("POST", wsPath(id, "/stop"), alice, nil)
	require.Equal(t, http.StatusAccepted, r.Status, "%s", r.Body)
	assert.Equal(t, "stopping", r.str(t, "status"))
	r = a.do("POST", wsPath(id, "/stop"), alice, nil) // idempotent
	require.Equal(t, http.StatusAccepted, r.Status)

	r = a.do("PATCH", wsPath(id), alice, map[string]any{"description": "my box"})
	expectProblem(t, r, http.StatusConflict, "illegal_transition") // still stopping: not stopped yet

	r = a.do("DELETE", wsPath(id), alice, nil)
	require.Equal(t, http.StatusAccepted, r.Status, "%s", r.Body)
	assert.Equal(t, "deleting", r.str(t, "status"))
	assert.Equal(t, "deleted", r.str(t, "desired"))

	r = a.do("GET", wsPath(id, "/events"), alice, nil)
	require.Equal(t, http.StatusOK, r.Status)
	var hist struct {
		Events []struct {
			Sequence uint64 `json:"sequence"`
			Type     string `json:"type"`
			Actor    string `json:"actor"`
			Reason   string `json:"reason"`
			Trace    string `json:"traceparent"`
			Corr     string `json:"correlationid"`
		} `json:"events"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &hist))
	var types []string
	for _, ev := range hist.Events {
		types = append(types, ev.Type)
		assert.Equal(t, "user:alice", ev.Actor)
		assert.NotEmpty(t, ev.Reason)
		assert.NotEmpty(t, ev.Trace, "events carry W3C trace context")
		assert.NotEmpty(t, ev.Corr, "events carry the request id")
	}
	assert.Equal(t, []string{"berth.workspace.created", "berth.workspace.start_requested",
		"berth.workspace.stop_requested", "berth.workspace.delete_requested"}, types)

	// An incoming traceparent is continued into the event.
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	r = a.do("POST", wsPath(bobID, "/start"), admin, nil, "traceparent", parent)
	require.Equal(t, http.StatusAccepted, r.Status)
	r = a.do("GET", wsPath(bobID, "/events"), admin, nil)
	assert.Contains(t, string(r.Body), "4bf92f3577b34da6a3ce929d0e0e4736")

	// Lists: alice sees none (hers is deleting and still listed), bob's is hidden from her.
	before := map[string]string{}
	for _, who := range []string{admin, alice} {
		before[who] = string(a.do("GET", "/api/v1/workspaces", who, nil).Body)
	}
	assert.Contains(t, before[admin], "bob-lab")
	assert.NotContains(t, before[alice], "bob-lab")
	getBefore := string(a.do("GET", wsPath(bobID), admin, nil).Body)

	// A fresh API process on the same log serves the same state.
	a.stop()
	b := e.startAPI()
	for who, want := range before {
		assert.JSONEq(t, want, string(b.do("GET", "/api/v1/workspaces", who, nil).Body))
	}
	assert.JSONEq(t, getBefore, string(b.do("GET", wsPath(bobID), admin, nil).Body))
	r = b.do("GET", "/api/v1/images", alice, nil)
	assert.Contains(t, string(r.Body), demoImage)
	// The replayed API keeps enforcing uniqueness and transitions.
	expectProblem(t, b.do("POST", "/api/v1/workspaces", admin, map[string]any{"name": "bob-lab"}), http.StatusConflict, "name_taken")
	r = b.do("POST", wsPath(bobID, "/start"), admin, nil)
	require.Equal(t, http.StatusAccepted, r.Status)
	assert.Equal(t, "starting", r.str(t, "status"))
}

// TestAuthMatrix covers who may call what.
func TestAuthMatrix(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI()
	admin, alice, bob := e.token("root", "admin"), e.token("alice", "user"), e.token("bob", "user")
	a.addImage(admin, demoImage)
	r := a.do("POST", "/api/v1/workspaces/launch", alice, nil)
	require.Equal(t, http.StatusCreated, r.Status)
	id := r.str(t, "id")

	expired, err := e.issuer.Issue("alice", []string{"user"}, time.Now().Add(-2*time.Hour), time.Hour)
	require.NoError(t, err)
	otherKey := strings.Replace(alice, alice[len(alice)-5:], "AAAAA", 1)
	noRole := e.token("carol")

	cases := []struct {
		name, method, path, token string
		headers                   []string
		status                    int
		code                      string
	}{
		{"no token", "GET", "/api/v1/workspaces", "", nil, 401, "unauthenticated"},
		{"basic auth", "GET", "/api/v1/workspaces", "", []string{"Authorization", "Basic YWxpY2U6eA=="}, 401, "unauthenticated"},
		{"expired", "GET", "/api/v1/workspaces", expired, nil, 401, "token_expired"},
		{"bad signature", "GET", "/api/v1/workspaces", otherKey, nil, 401, "invalid_token"},
		{"garbage token", "GET", "/api/v1/workspaces", "not.a.jwt", nil, 401, "invalid_token"},
		{"forged identity header", "GET", wsPath(id), "", []string{"X-Forwarded-User", "alice", "X-Berth-User", "alice"}, 401, "unauthenticated"},
		{"no berth role", "GET", "/api/v1/workspaces", noRole, nil, 403, "forbidden"},
		{"user adds image", "POST", "/api/v1/images", alice, nil, 403, "forbidden"},
		{"user removes image", "DELETE", "/api/v1/images/x", alice, nil, 403, "forbidden"},
		{"other user's workspace", "GET", wsPath(id), bob, nil, 404, "workspace_not_found"},
		{"other user's stop", "POST", wsPath(id, "/stop"), bob, nil, 404, "workspace_not_found"},
		{"other user's start", "POST", wsPath(id, "/start"), bob, nil, 404, "workspace_not_found"},
		{"other user's delete", "DELETE", wsPath(id), bob, nil, 404, "workspace_not_found"},
		{"other user's history", "GET", wsPath(id, "/events"), bob, nil, 404, "workspace_not_found"},
		{"other user's update", "PATCH", wsPath(id), bob, nil, 404, "workspace_not_found"},
		{"other user's purge", "DELETE", wsPath(id) + "?data=purge", bob, nil, 404, "workspace_not_found"},
		{"unknown workspace", "GET", wsPath("00000000-0000-0000-0000-000000000000"), admin, nil, 404, "workspace_not_found"},
		{"dev token route off", "POST", "/api/v1/dev/token", "", nil, 404, "route_not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.method == "POST" && strings.HasSuffix(c.path, "images") || c.method == "PATCH" || strings.HasSuffix(c.path, "token") {
				body = map[string]any{"description": "x"}
			}
			expectProblem(t, a.do(c.method, c.path, c.token, body, c.headers...), c.status, c.code)
		})
	}
	r = a.do("GET", "/api/v1/workspaces", e.token("alice", "user"), nil, "WWW-Authenticate", "x")
	require.Equal(t, http.StatusOK, r.Status)
	r = a.do("GET", "/api/v1/workspaces", "", nil)
	assert.Contains(t, r.Header.Get("WWW-Authenticate"), "Bearer")

	// Bob's list does not show alice's workspace; admin sees it and may act on it.
	assert.NotContains(t, string(a.do("GET", "/api/v1/workspaces", bob, nil).Body), id)
	assert.Contains(t, string(a.do("GET", "/api/v1/workspaces?owner=alice", admin, nil).Body), id)
	require.Equal(t, http.StatusAccepted, a.do("POST", wsPath(id, "/stop"), admin, nil).Status)
	r = a.do("GET", "/api/v1/me", alice, nil)
	assert.Equal(t, "alice", r.str(t, "sub"))
}

// TestValidationRejects sends every invalid input the API knows about and
// checks the problem code.
func TestValidationRejects(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI("--max-memory", "4GiB", "--body-limit", "2K")
	admin, alice := e.token("root", "admin"), e.token("alice", "user")
	a.addImage(admin, demoImage)
	a.addImage(admin, "ok/admins-only:1")
	r := a.do("POST", "/api/v1/workspaces", admin, map[string]any{"name": "taken"})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	takenID := r.str(t, "id")

	create := func(body map[string]any) resp { return a.do("POST", "/api/v1/workspaces", admin, body) }
	fieldCases := []struct {
		name string
		body map[string]any
		code string
	}{
		{"uppercase name", map[string]any{"name": "Alice"}, "invalid_name"},
		{"empty name", map[string]any{"name": ""}, "invalid_name"},
		{"leading hyphen", map[string]any{"name": "-a"}, "invalid_name"},
		{"trailing hyphen", map[string]any{"name": "a-"}, "invalid_name"},
		{"name with dot", map[string]any{"name": "a.b"}, "invalid_name"},
		{"name too long", map[string]any{"name": strings.Repeat("a", 64)}, "invalid_name"},
		{"image not in catalog", map[string]any{"name": "x1", "image": "evil/miner:latest"}, "image_not_in_catalog"},
		{"project traversal", map[string]any{"name": "x2", "projects": []string{"course-101/../../etc"}}, "project_path_traversal"},
		{"project absolute", map[string]any{"name": "x3", "projects": []string{"/var/run/docker.sock"}}, "project_path_absolute"},
		{"project missing", map[string]any{"name": "x4", "projects": []string{"course-999"}}, "project_not_found"},
		{"project is a file", map[string]any{"name": "x5", "projects": []string{"notes.txt"}}, "project_not_directory"},
		{"project symlink escape", map[string]any{"name": "x6", "projects": []string{"escape"}}, "project_path_escapes_root"},
		{"project not clean", map[string]any{"name": "x7", "projects": []string{"course-101/"}}, "project_path_not_clean"},
		{"project empty", map[string]any{"name": "x8", "projects": []string{""}}, "project_path_empty"},
		{"project odd characters", map[string]any{"name": "x9", "projects": []string{"course 101"}}, "project_path_characters"},
		{"project twice", map[string]any{"name": "x10", "projects": []string{"course-101", "course-101"}}, "duplicate_project"},
		{"memory over max", map[string]any{"name": "x11", "resources": map[string]any{"memory_bytes": 5 << 30}}, "resources_out_of_bounds"},
		{"memory too small", map[string]any{"name": "x12", "resources": map[string]any{"memory_bytes": 1024}}, "resources_out_of_bounds"},
		{"cpu over max", map[string]any{"name": "x13", "resources": map[string]any{"milli_cpus": 64000}}, "resources_out_of_bounds"},
		{"negative pids", map[string]any{"name": "x14", "resources": map[string]any{"pids": -1}}, "resources_out_of_bounds"},
		{"description too long", map[string]any{"name": "x15", "description": strings.Repeat("d", 1025)}, "description_too_long"},
	}
	for _, c := range fieldCases {
		t.Run(c.name, func(t *testing.T) {
			r := create(c.body)
			expectProblem(t, r, http.StatusUnprocessableEntity, "validation_failed")
			assert.Contains(t, r.fieldCodes(t), c.code)
		})
	}
	t.Run("several errors at once", func(t *testing.T) {
		r := create(map[string]any{"name": "BAD", "projects": []string{"../x"}})
		expectProblem(t, r, http.StatusUnprocessableEntity, "validation_failed")
		assert.ElementsMatch(t, []string{"invalid_name", "project_path_traversal"}, r.fieldCodes(t))
	})

	other := []struct {
		name, method, path, token string
		body                      any
		status                    int
		code                      string
	}{
		{"name taken", "POST", "/api/v1/workspaces", admin, map[string]any{"name": "taken"}, 409, "name_taken"},
		{"launch takes other's name", "POST", "/api/v1/workspaces/launch", alice, map[string]any{"name": "taken"}, 409, "name_taken"},
		{"launch invalid name", "POST", "/api/v1/workspaces/launch", alice, map[string]any{"name": "Nope!"}, 422, "validation_failed"},
		{"malformed json", "POST", "/api/v1/workspaces", admin, `{"name":`, 400, "malformed_json"},
		{"unknown field", "POST", "/api/v1/workspaces", admin, `{"name":"ok1","imagee":"x"}`, 400, "malformed_json"},
		{"wrong type", "POST", "/api/v1/workspaces", admin, `{"name":42}`, 400, "malformed_json"},
		{"trailing data", "POST", "/api/v1/workspaces", admin, `{"name":"ok2"} {"name":"ok3"}`, 400, "malformed_json"},
		{"empty body", "POST", "/api/v1/workspaces", admin, "", 400, "malformed_json"},
		{"body too large", "POST", "/api/v1/workspaces", admin, `{"name":"big","description":"` + strings.Repeat("x", 4096) + `"}`, 413, "body_too_large"},
		// Users may pick the default image and launchable ones (TestLaunchChoosesTheImage).
		{"user picks an image not launchable", "POST", "/api/v1/workspaces", alice, map[string]any{"name": "alice--mine", "image": "ok/admins-only:1"}, 403, "image_not_launchable"},
		{"user picks projects", "POST", "/api/v1/workspaces", alice, map[string]any{"name": "mine", "projects": []string{"course-101"}}, 403, "forbidden"},
		{"user creates for bob", "POST", "/api/v1/workspaces", alice, map[string]any{"name": "mine", "owner": "bob"}, 403, "forbidden"},
		{"empty update", "PATCH", wsPath(takenID), admin, map[string]any{}, 422, "validation_failed"},
		{"update bad image", "PATCH", wsPath(takenID), admin, map[string]any{"image": "nope:1"}, 422, "validation_failed"},
		{"update bad projects", "PATCH", wsPath(takenID), admin, map[string]any{"projects": []string{"../x"}}, 422, "validation_failed"},
		{"bad purge flag", "DELETE", wsPath(takenID) + "?purge=maybe", admin, nil, 400, "invalid_query"},
		{"bad include_deleted", "GET", "/api/v1/workspaces?include_deleted=yes-please", admin, nil, 400, "invalid_query"},
		{"image bad ref", "POST", "/api/v1/images", admin, map[string]any{"ref": "UPPER/case"}, 422, "validation_failed"},
		{"image bad capability", "POST", "/api/v1/images", admin, map[string]any{"ref": "ok/img:1", "cap_add": []string{"SYS_ADMIN"}}, 422, "validation_failed"},
		{"image prefixed capability", "POST", "/api/v1/images", admin, map[string]any{"ref": "ok/img:1", "cap_add": []string{"CAP_SYS_ADMIN"}}, 422, "validation_failed"},
		{"image capability all", "POST", "/api/v1/images", admin, map[string]any{"ref": "ok/img:1", "cap_add": []string{"ALL"}}, 422, "validation_failed"},
		{"image capability past the allow-list", "POST", "/api/v1/images", admin, map[string]any{"ref": "ok/img:1", "cap_add": []string{"DAC_READ_SEARCH"}}, 422, "validation_failed"},
		{"image made-up capability", "POST", "/api/v1/images", admin, map[string]any{"ref": "ok/img:1", "cap_add": []string{"NOT_A_CAP"}}, 422, "validation_failed"},
		{"image twice", "POST", "/api/v1/images", admin, map[string]any{"ref": demoImage}, 409, "image_exists"},
		{"remove unknown image", "DELETE", "/api/v1/images/nope%2Fnope:1", admin, nil, 404, "image_not_found"},
		{"unknown route", "GET", "/api/v1/nothing", admin, nil, 404, "route_not_found"},
		{"wrong method", "PUT", "/api/v1/workspaces", admin, nil, 405, "method_not_allowed"},
	}
	for _, c := range other {
		t.Run(c.name, func(t *testing.T) {
			expectProblem(t, a.do(c.method, c.path, c.token, c.body), c.status, c.code)
		})
	}
	t.Run("wrong content type", func(t *testing.T) {
		expectProblem(t, a.do("POST", "/api/v1/workspaces", admin, `{"name":"ct"}`, "Content-Type", "text/plain"), 415, "unsupported_media_type")
	})
	t.Run("user updates resources", func(t *testing.T) {
		r := a.do("POST", "/api/v1/workspaces", alice, map[string]any{"name": "alice--s"})
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
		expectProblem(t, a.do("PATCH", wsPath(r.str(t, "id")), alice, map[string]any{"resources": map[string]any{"pids": 100}}), 403, "forbidden")
		ok := a.do("PATCH", wsPath(r.str(t, "id")), alice, map[string]any{"description": "mine"})
		require.Equal(t, http.StatusOK, ok.Status, "%s", ok.Body)
		assert.Equal(t, "mine", ok.str(t, "description"))
	})
	t.Run("removed image cannot be used", func(t *testing.T) {
		a.addImage(admin, "tmp/img:1")
		require.Equal(t, http.StatusNoContent, a.do("DELETE", "/api/v1/images/tmp%2Fimg:1", admin, nil).Status)
		r := create(map[string]any{"name": "late", "image": "tmp/img:1"})
		expectProblem(t, r, 422, "validation_failed")
		assert.Contains(t, r.fieldCodes(t), "image_not_in_catalog")
	})
	// Nothing invalid reached the log: only the accepted workspaces exist.
	r = a.do("GET", "/api/v1/workspaces", admin, nil)
	var list struct {
		Workspaces []struct{ Name string } `json:"workspaces"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &list))
	var got []string
	for _, w := range list.Workspaces {
		got = append(got, w.Name)
	}
	assert.Equal(t, []string{"alice--s", "taken"}, got)
}

// TestConcurrentLaunchesMakeOneWorkspace: many launches by one user at once
// produce one workspace and one start request; concurrent creates of one
// name produce one workspace and conflicts.
func TestConcurrentLaunchesMakeOneWorkspace(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI()
	b := e.startAPI() // a second replica on the same log
	admin, alice := e.token("root", "admin"), e.token("alice", "user")
	a.addImage(admin, demoImage)
	require.Eventually(t, func() bool {
		return strings.Contains(string(b.do("GET", "/api/v1/images", admin, nil).Body), demoImage)
	}, 5*time.Second, 20*time.Millisecond)

	const n = 12
	var wg sync.WaitGroup
	ids := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			api := a
			if i%2 == 1 {
				api = b
			}
			r := api.do("POST", "/api/v1/workspaces/launch", alice, nil)
			if assert.Contains(t, []int{200, 201, 202}, r.Status, "%s", r.Body) {
				ids <- r.str(t, "id")
			}
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		seen[id] = true
	}
	require.Len(t, seen, 1, "all launches must land on one workspace")
	for id := range seen {
		r := a.do("GET", wsPath(id, "/events"), alice, nil)
		assert.Equal(t, 1, strings.Count(string(r.Body), "berth.workspace.created"))
		assert.Equal(t, 1, strings.Count(string(r.Body), "berth.workspace.start_requested"))
	}

	statuses := make(chan int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			api := a
			if i%2 == 1 {
				api = b
			}
			statuses <- api.do("POST", "/api/v1/workspaces", admin, map[string]any{"name": "contested"}).Status
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	assert.Equal(t, map[int]int{201: 1, 409: n - 1}, count)
}

// TestBusDown: with NATS gone the API stays up, reports not ready, and
// answers 503 with the dashboard's message instead of hanging.
func TestBusDown(t *testing.T) {
	e := newEnv(t)
	srv := e.nats
	a := e.startAPI("--append-timeout", "500ms")
	admin := e.token("root", "admin")
	a.addImage(admin, demoImage)

	srv.Shutdown()
	srv.WaitForShutdown()
	require.Eventually(t, func() bool {
		return a.do("GET", "/readyz", "", nil).Status == http.StatusServiceUnavailable
	}, 5*time.Second, 50*time.Millisecond)
	r := a.do("POST", "/api/v1/workspaces/launch", admin, nil)
	expectProblem(t, r, http.StatusServiceUnavailable, "unavailable")
	assert.Equal(t, "Workspace feature not available", r.str(t, "title"))
	assert.Equal(t, http.StatusOK, a.do("GET", "/healthz", "", nil).Status)
}

// TestEngineDownRefusesStarts: while provisioners report that Docker is
// unreachable, launches and starts answer 503 and leave nothing in the log.
func TestEngineDownRefusesStarts(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI()
	admin, alice := e.token("root", "admin"), e.token("alice", "user")
	a.addImage(admin, demoImage)
	created := a.do("POST", "/api/v1/workspaces", admin, map[string]any{"name": "box"})
	require.Equal(t, http.StatusCreated, created.Status)

	board := e.engineBoard()
	require.NoError(t, board.Publish(context.Background(), "p1", errors.New("dial unix /var/run/docker.sock: connection refused"), time.Now()))
	r := a.do("POST", "/api/v1/workspaces/launch", alice, nil)
	expectProblem(t, r, http.StatusServiceUnavailable, "engine_unavailable")
	assert.Equal(t, "Workspace feature not available", r.str(t, "title"))
	assert.Contains(t, r.str(t, "detail"), "Docker is not accessible")
	expectProblem(t, a.do("POST", wsPath(created.str(t, "id"), "/start"), admin, nil), http.StatusServiceUnavailable, "engine_unavailable")
	assert.NotContains(t, string(a.do("GET", "/api/v1/workspaces", alice, nil).Body), `"alice"`, "a refused launch creates nothing")

	// One healthy provisioner is enough.
	require.NoError(t, board.Publish(context.Background(), "p2", nil, time.Now()))
	require.Equal(t, http.StatusCreated, a.do("POST", "/api/v1/workspaces/launch", alice, nil).Status)
}
