package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func newServer(t *testing.T) (*server, *httptest.Server) {
	t.Helper()
	home := t.TempDir()
	termJS := filepath.Join(t.TempDir(), "term.js")
	if err := os.WriteFile(termJS, []byte("var Terminal;"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &server{name: "alice", base: "/workspace-alice", home: home, shell: "/bin/sh", termJS: termJS,
		heartbeat: filepath.Join(home, ".local/share/heartbeat"), maxTerms: 2, beat: 20 * time.Millisecond,
		log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go s.heartbeats(ctx)
	srv := httptest.NewServer(s.routes())
	t.Cleanup(srv.Close)
	return s, srv
}

func dial(t *testing.T, srv *httptest.Server, path string) (*websocket.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+path, nil)
	return c, err
}

func send(t *testing.T, c *websocket.Conn, m message) {
	t.Helper()
	b, _ := json.Marshal(m)
	if err := c.Write(context.Background(), websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// readUntil reads the terminal's output until it holds want.
func readUntil(t *testing.T, c *websocket.Conn, want string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out strings.Builder
	for !strings.Contains(out.String(), want) {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for %q: %v; so far %q", want, err, out.String())
		}
		out.Write(b)
	}
	return out.String()
}

// TestTerminal: a shell on a real pseudo-terminal answers what is typed,
// under the base path; the heartbeat file is touched while it is open;
// exit closes the websocket saying why.
func TestTerminal(t *testing.T) {
	s, srv := newServer(t)
	c, err := dial(t, srv, "/workspace-alice/tty")
	if err != nil {
		t.Fatal(err)
	}
	// What the page would never send is ignored, and the terminal goes on.
	if err := c.Write(context.Background(), websocket.MessageText, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	send(t, c, message{Type: "exec", Data: "rm -rf /"})
	send(t, c, message{Type: "resize", Cols: 0, Rows: 0})
	send(t, c, message{Type: "resize", Cols: 100, Rows: 30})
	send(t, c, message{Type: "input", Data: "echo $((40+2)); stty size; pwd\r"})
	// pwd answers last; the typed line reads 40+2, so only the answer is 42.
	out := readUntil(t, c, s.home+"\r\n")
	if !strings.Contains(out, "42\r\n") || !strings.Contains(out, "30 100\r\n") {
		t.Fatalf("no 42 or size line in %q", out)
	}
	fi, err := os.Stat(s.heartbeat)
	if err != nil || time.Since(fi.ModTime()) > 5*time.Second {
		t.Fatalf("heartbeat file while a terminal is open: %v", err)
	}
	send(t, c, message{Type: "input", Data: "exit\r"})
	_, _, err = c.Read(context.Background())
	for err == nil { // the rest of the output, then the close
		_, _, err = c.Read(context.Background())
	}
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Reason != "the shell exited" {
		t.Fatalf("after exit: %v (output %q)", err, out)
	}
}

// TestTerminalRefusesOtherOrigins: a page of another site cannot open a
// terminal with the user's cookie (the handshake is refused), and the
// number of terminals is bounded.
func TestTerminalRefusesOtherOrigins(t *testing.T) {
	_, srv := newServer(t)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/tty", nil)
	for k, v := range map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": "http://evil.example"} {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin handshake: %d, want 403", res.StatusCode)
	}
	var open []*websocket.Conn
	for range 2 {
		c, err := dial(t, srv, "/tty")
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	if _, err := dial(t, srv, "/tty"); err == nil {
		t.Fatal("a third terminal opened; the bound is 2")
	}
	for _, c := range open {
		c.Close(websocket.StatusNormalClosure, "")
	}
}

// TestPage: the page and its assets are served with and without the base
// path; the page names the workspace and loads only its own scripts.
func TestPage(t *testing.T) {
	_, srv := newServer(t)
	for _, path := range []string{"/workspace-alice/", "/"} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(b), "alice") || !strings.Contains(string(b), `src="/workspace-alice/page.js"`) {
			t.Fatalf("%s: %d %s", path, res.StatusCode, b)
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self';") {
			t.Fatalf("CSP %q", csp)
		}
	}
	for _, path := range []string{"/workspace-alice/page.js", "/workspace-alice/term.js", "/healthz"} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("%s: %d", path, res.StatusCode)
		}
	}
}
