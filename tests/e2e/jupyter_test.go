package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	neturl "net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const jupyterImage = "berth/workspace-jupyter:latest"

// jupyterProfile is the catalog profile docs/images.md gives for
// berth/workspace-jupyter.
var jupyterProfile = map[string]any{"port": 8888, "health": "{base}/api/status", "prefix": "keep",
	"activity":  "http:{base}/api/status#last_activity",
	"busy":      "http:{base}/api/kernels?no_track_activity=1#execution_state=busy",
	"resources": map[string]any{"memory_bytes": 2 << 30, "milli_cpus": 2000, "pids": 1024}}

// TestJupyterWorkspace: Debian's Jupyter Notebook as a workspace on the real
// stack, in path mode (served under /workspace-<name>/, the prefix kept).
// Alice opens its file browser through Traefik with her session cookie,
// starts a Python kernel and runs a cell over the kernel's websocket
// (numpy, pandas, matplotlib imported); bob is refused; and a cell run
// after the last request through the edge is activity, read from
// Jupyter's own /api/status.
func TestJupyterWorkspace(t *testing.T) {
	s := newStack(t, "BERTH_HEARTBEAT_INTERVAL=1s")
	requireImage(t, s, jupyterImage)
	admin, alice := s.token("root", "admin"), s.token("alice", "user")
	ws := s.aliceRunning(admin, jupyterImage, jupyterProfile)

	nb := &jupyter{url: ws.URL, cookie: "berth_session=" + s.sessionCookie(alice)}
	page := nb.tree(t, 30*time.Second)
	assert.Contains(t, page, "Jupyter", "the file browser")
	assert.Contains(t, page, "/workspace-alice/static/", "its links keep the workspace's prefix")

	bob := "berth_session=" + s.sessionCookie(s.token("bob", "user"))
	status, _, _ := call(t, "GET", ws.URL+"api/contents", "", nil, "Cookie", bob)
	assert.Equal(t, http.StatusForbidden, status, "bob reads alice's files")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn := nb.openKernel(ctx, t)
	lastEdge := time.Now() // the websocket's frames make no more forwardAuth calls

	time.Sleep(2 * time.Second) // so the cell's activity is later than any request through the edge
	ran := time.Now()
	out := runCell(ctx, t, conn, "import numpy, pandas, matplotlib\nprint(int(numpy.arange(7).sum()) * 2, pandas.__name__)")
	assert.Equal(t, "42 pandas\n", out)

	// Another workspace's route comes and goes (two Traefik reloads): the
	// kernel's websocket carries the next cell as before.
	s.changeRoutes(admin)
	assert.Equal(t, "7\n", runCell(ctx, t, conn, "print(3 + 4)"), "the kernel's websocket after Traefik reloaded")

	lastUse := s.activity()
	until(t, 20*time.Second, "the cell's run recorded as activity, from Jupyter's /api/status", func() bool {
		at, ok := lastUse(ws.ID)
		return ok && at.After(lastEdge.Add(time.Second)) && !at.Before(ran.Add(-time.Second))
	})

	// A cell that computes for long without a word: Jupyter's own
	// last_activity stands at its start, the profile's busy probe
	// (/api/kernels: execution_state busy) keeps the workspace in use.
	silent := time.Now()
	id := sendCell(ctx, t, conn, "import time\ntime.sleep(12)")
	until(t, 11*time.Second, "a silent running cell recorded as activity, from Jupyter's /api/kernels", func() bool {
		at, ok := lastUse(ws.ID)
		return ok && at.After(silent.Add(4*time.Second))
	})
	assert.Empty(t, cellOutput(ctx, t, conn, id))
	done := time.Now()
	time.Sleep(3 * time.Second) // three heartbeats with every kernel idle
	at, _ := lastUse(ws.ID)
	assert.False(t, at.After(done.Add(time.Second)), "activity at %s, after the cell ended at %s", at, done)
}

// TestJupyterSubdomain: the same Jupyter in subdomain mode, on a host of
// its own and at its root (an empty base path, the prefix kept): its file
// browser and a kernel's websocket through Traefik and forwardAuth, a
// cell's answer before and after two Traefik reloads; bob is refused.
func TestJupyterSubdomain(t *testing.T) {
	s := newStack(t, "BERTH_ROUTING_MODE=subdomain", "BERTH_DOMAIN=berth.test")
	requireImage(t, s, jupyterImage)
	admin, alice := s.token("root", "admin"), s.token("alice", "user")
	ws := s.aliceRunning(admin, jupyterImage, jupyterProfile)

	_, port, _ := net.SplitHostPort(s.web)
	require.Equal(t, "http://alice.berth.test:"+port+"/", ws.URL)
	nb := &jupyter{url: "http://" + s.web + "/", host: "alice.berth.test:" + port, token: alice}
	page := nb.tree(t, 60*time.Second)
	assert.Contains(t, page, "Jupyter", "the file browser")
	assert.NotContains(t, page, "/workspace-alice/", "served at the host's root")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn := nb.openKernel(ctx, t)
	assert.Equal(t, "42\n", runCell(ctx, t, conn, "print(6*7)"))
	s.changeRoutes(admin)
	assert.Equal(t, "7\n", runCell(ctx, t, conn, "print(3 + 4)"), "the kernel's websocket after Traefik reloaded")

	status, _, _ := call(t, "GET", nb.url+"api/contents", s.token("bob", "user"), nil, "Host", nb.host)
	assert.Equal(t, http.StatusForbidden, status, "bob reads alice's files")
}

// aliceRunning puts image on the catalog with profile, defines alice's
// workspace of it (named alice) and waits until it runs.
func (s *stack) aliceRunning(admin, image string, profile map[string]any) wsView {
	s.t.Helper()
	status, b, _ := call(s.t, "POST", "http://"+s.api+"/api/v1/images", admin, map[string]any{"ref": image, "profile": profile})
	require.Equal(s.t, http.StatusCreated, status, "%s", b)
	status, b, _ = call(s.t, "POST", "http://"+s.api+"/api/v1/workspaces", admin, map[string]any{
		"name": "alice", "owner": "alice", "image": image, "projects": []string{}})
	require.Equal(s.t, http.StatusCreated, status, "%s", b)
	var ws wsView
	require.NoError(s.t, json.Unmarshal(b, &ws))
	alice := s.token("alice", "user")
	s.lifecycle(alice, ws.ID, "start")
	s.await(alice, ws.ID, "running", 90*time.Second)
	return ws
}

// jupyter is how a test reaches one Jupyter through Traefik: its base URL,
// the Host to send (subdomain mode: the workspace's own host; "" for the
// URL's), and who asks (a session cookie or a bearer token). Cookie
// gains Jupyter's own _xsrf once the file browser has set it.
type jupyter struct {
	url, host, cookie, token, xsrf string
}

func (j *jupyter) headers(more ...string) []string {
	h := append([]string{"Host", j.host}, more...)
	if j.cookie != "" {
		h = append(h, "Cookie", j.cookie)
	}
	return h
}

// origin is the page's origin Jupyter expects on a websocket (its own).
func (j *jupyter) origin() string {
	if j.host != "" {
		return "http://" + j.host
	}
	u, _ := neturl.Parse(j.url)
	return "http://" + u.Host
}

// tree waits for Jupyter's file browser through Traefik and returns the
// page, keeping Jupyter's XSRF token for what follows.
func (j *jupyter) tree(t testing.TB, within time.Duration) string {
	t.Helper()
	var (
		b []byte
		h http.Header
	)
	until(t, within, "Jupyter's file browser through Traefik", func() bool {
		var status int
		status, b, h = call(t, "GET", j.url+"tree", j.token, nil, j.headers()...)
		return status == http.StatusOK
	})
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == "_xsrf" {
			j.xsrf = c.Value
		}
	}
	require.NotEmpty(t, j.xsrf, "Jupyter's own XSRF cookie reaches the browser")
	j.cookie = strings.TrimPrefix(j.cookie+"; _xsrf="+j.xsrf, "; ")
	return string(b)
}

// openKernel starts a Python kernel and opens its websocket through
// Traefik and forwardAuth.
func (j *jupyter) openKernel(ctx context.Context, t testing.TB) *websocket.Conn {
	t.Helper()
	status, b, _ := call(t, "POST", j.url+"api/kernels", j.token, map[string]any{"name": "python3"},
		j.headers("X-XSRFToken", j.xsrf, "Origin", j.origin())...)
	require.Equal(t, http.StatusCreated, status, "%s", b)
	var kernel struct{ ID string }
	require.NoError(t, json.Unmarshal(b, &kernel))
	hdr := http.Header{"Cookie": {j.cookie}, "Origin": {j.origin()}}
	if j.token != "" {
		hdr.Set("Authorization", "Bearer "+j.token)
	}
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(j.url, "http")+"api/kernels/"+kernel.ID+"/channels?session_id="+uuid.NewString(),
		&websocket.DialOptions{Host: j.host, HTTPHeader: hdr})
	require.NoError(t, err, "the kernel's websocket through Traefik and forwardAuth")
	t.Cleanup(func() { conn.CloseNow() })
	conn.SetReadLimit(16 << 20)
	return conn
}

// runCell executes code on the kernel behind conn (Jupyter's messaging
// protocol over its websocket) and returns what it printed.
func runCell(ctx context.Context, t testing.TB, conn *websocket.Conn, code string) string {
	t.Helper()
	return cellOutput(ctx, t, conn, sendCell(ctx, t, conn, code))
}

// sendCell asks the kernel to execute code and returns the request's id.
func sendCell(ctx context.Context, t testing.TB, conn *websocket.Conn, code string) string {
	t.Helper()
	id := uuid.NewString()
	msg, err := json.Marshal(map[string]any{
		"header":        map[string]any{"msg_id": id, "username": "alice", "session": uuid.NewString(), "msg_type": "execute_request", "version": "5.3"},
		"parent_header": map[string]any{}, "metadata": map[string]any{}, "channel": "shell", "buffers": []any{},
		"content": map[string]any{"code": code, "silent": false, "store_history": true, "user_expressions": map[string]any{}, "allow_stdin": false, "stop_on_error": true},
	})
	require.NoError(t, err)
	require.NoError(t, conn.Write(ctx, websocket.MessageText, msg))
	return id
}

// cellOutput reads the kernel's messages until request id's cell is done
// and returns what it printed.
func cellOutput(ctx context.Context, t testing.TB, conn *websocket.Conn, id string) string {
	t.Helper()
	var out strings.Builder
	for {
		_, b, err := conn.Read(ctx)
		require.NoError(t, err, "waiting for the cell's output; so far %q", out.String())
		var m struct {
			Header struct {
				MsgType string `json:"msg_type"`
			} `json:"header"`
			ParentHeader struct {
				MsgID string `json:"msg_id"`
			} `json:"parent_header"`
			Content struct {
				Text           string `json:"text"`
				ExecutionState string `json:"execution_state"`
				Ename, Evalue  string
			} `json:"content"`
		}
		if json.Unmarshal(b, &m) != nil || m.ParentHeader.MsgID != id {
			continue
		}
		switch m.Header.MsgType {
		case "stream":
			out.WriteString(m.Content.Text)
		case "error":
			t.Fatalf("the cell failed: %s: %s", m.Content.Ename, m.Content.Evalue)
		case "status":
			if m.Content.ExecutionState == "idle" {
				return out.String()
			}
		}
	}
}
