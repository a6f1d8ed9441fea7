package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const debianImage = "berth/workspace-debian:latest"

// requireImage skips the test when image is missing (fails in CI).
func requireImage(t testing.TB, s *stack, image string) {
	t.Helper()
	if _, err := s.cli.ImageInspect(context.Background(), image); cerrdefs.IsNotFound(err) {
		if os.Getenv("BERTH_REQUIRE_DOCKER") == "1" {
			t.Fatalf("%s is missing: make images (as root) builds it", image)
		}
		t.Skipf("%s is missing: make images (as root) builds it", image)
	}
}

// sessionCookie signs token's user in the browser's way (through Traefik)
// and returns the session cookie.
func (s *stack) sessionCookie(token string) string {
	s.t.Helper()
	var (
		status int
		b      []byte
		h      http.Header
	)
	until(s.t, 10*time.Second, "the API's route through Traefik", func() bool {
		status, b, h = call(s.t, "POST", "http://"+s.web+"/api/v1/auth/session", token, nil)
		return status != http.StatusNotFound && status != 0
	})
	require.Equal(s.t, http.StatusCreated, status, "%s", b)
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == "berth_session" {
			return c.Value
		}
	}
	s.t.Fatal("no session cookie")
	return ""
}

// TestTerminalWorkspace: the real workspace image (Debian, berth-term) on
// the real stack. An admin defines alice's workspace with a project
// folder; alice starts it, opens the terminal through Traefik with her
// session cookie (a websocket, forwardAuth included), types, and reads the
// answers: 42, her project's file, the tools. Stopping it closes the
// terminal, saying so.
func TestTerminalWorkspace(t *testing.T) {
	s := newStack(t)
	requireImage(t, s, debianImage)
	admin, alice := s.token("root", "admin"), s.token("alice", "user")
	status, b, _ := call(t, "POST", "http://"+s.api+"/api/v1/images", admin, map[string]any{"ref": debianImage})
	require.Equal(t, http.StatusCreated, status, "%s", b)
	require.NoError(t, os.MkdirAll(filepath.Join(s.dir, "projects", "cs101"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(s.dir, "projects", "cs101", "hello.py"), []byte("print('hello from cs101')\n"), 0o644))
	status, b, _ = call(t, "POST", "http://"+s.api+"/api/v1/workspaces", admin, map[string]any{
		"name": "alice", "owner": "alice", "image": debianImage, "projects": []string{"cs101"}, "description": "CS 101"})
	require.Equal(t, http.StatusCreated, status, "%s", b)
	var ws wsView
	require.NoError(t, json.Unmarshal(b, &ws))
	s.lifecycle(alice, ws.ID, "start")
	s.await(alice, ws.ID, "running", 60*time.Second)

	cookie := s.sessionCookie(alice)
	var page string
	until(t, 30*time.Second, "the terminal page through Traefik", func() bool {
		var code int
		code, page = get(t, ws.URL, "", "Cookie", "berth_session="+cookie)
		return code == http.StatusOK
	})
	assert.Contains(t, page, "term.js", "the terminal page")

	term := dialTerminal(t, s, ws.URL, cookie)
	type_ := func(line string) {
		b, _ := json.Marshal(map[string]string{"type": "input", "data": line + "\r"})
		require.NoError(t, term.Write(context.Background(), websocket.MessageText, b))
	}
	type_("echo $((40+2)); id -un; python3 ~/project/cs101/hello.py; gcc --version | head -1; git --version")
	out := readTerminal(t, term, "git version")
	assert.Contains(t, out, "42\r\n")
	assert.Contains(t, out, "coder\r\n", "a non-root user")
	assert.Contains(t, out, "hello from cs101", "the project folder the admin picked")
	assert.Contains(t, out, "gcc (Debian")

	// Another user's cookie opens no terminal.
	bobCookie := s.sessionCookie(s.token("bob", "user"))
	_, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(ws.URL, "http")+"tty", &websocket.DialOptions{
		HTTPHeader: http.Header{"Cookie": {"berth_session=" + bobCookie}, "Origin": {"http://" + s.web}}})
	assert.Error(t, err, "bob opened alice's terminal")

	s.lifecycle(alice, ws.ID, "stop")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for err = nil; err == nil; _, _, err = term.Read(ctx) {
	}
	// The terminal ends: with berth-term's close frame, or (Traefik drops
	// the route first) with the connection's end; never left hanging.
	require.Error(t, err)
	assert.NotErrorIs(t, err, context.DeadlineExceeded, "the terminal outlived its workspace")
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		assert.Contains(t, []string{"the workspace is stopping", "the shell exited"}, ce.Reason)
	}
}

func dialTerminal(t testing.TB, s *stack, url, cookie string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"tty", &websocket.DialOptions{
		HTTPHeader: http.Header{"Cookie": {"berth_session=" + cookie}, "Origin": {"http://" + s.web}}})
	require.NoError(t, err, "the terminal's websocket through Traefik")
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func readTerminal(t testing.TB, c *websocket.Conn, want string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out strings.Builder
	for !strings.Contains(out.String(), want) {
		_, b, err := c.Read(ctx)
		require.NoError(t, err, "waiting for %q; so far %q", want, out.String())
		out.Write(b)
	}
	return out.String()
}
