package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// fakeVNC greets as an RFB 3.8 server and records what a viewer sends.
func fakeVNC(t *testing.T) (addr string, got <-chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan []byte, 64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.WriteString(c, "RFB 003.008\n")
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						ch <- bytes.Clone(buf[:n])
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), ch
}

func newServer(t *testing.T, vnc string) *httptest.Server {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vnc.html"), []byte("<title>noVNC</title>"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &server{base: "/workspace-alice", vnc: vnc, novnc: dir, maxConns: 2,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
	ts := httptest.NewServer(s.routes())
	t.Cleanup(ts.Close)
	return ts
}

func lastInput(t *testing.T, ts *httptest.Server) (*time.Time, int) {
	t.Helper()
	res, err := http.Get(ts.URL + "/workspace-alice/api/activity")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var doc struct {
		LastInput   *time.Time `json:"last_input"`
		Connections int        `json:"connections"`
	}
	if err := json.NewDecoder(res.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc.LastInput, doc.Connections
}

func TestViewerCarriedAndInputCounted(t *testing.T) {
	vnc, got := fakeVNC(t)
	ts := newServer(t, vnc)
	for _, path := range []string{"/workspace-alice/", "/workspace-alice/vnc.html", "/vnc.html", "/workspace-alice/healthz"} {
		res, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, res.StatusCode)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws := "ws" + strings.TrimPrefix(ts.URL, "http") + "/workspace-alice/websockify"
	conn, res, err := websocket.Dial(ctx, ws, &websocket.DialOptions{Subprotocols: []string{"binary"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if res.Header.Get("Sec-WebSocket-Protocol") != "binary" {
		t.Fatalf("subprotocol %q, want binary (noVNC asks for it)", res.Header.Get("Sec-WebSocket-Protocol"))
	}
	_, banner, err := conn.Read(ctx)
	if err != nil || string(banner) != "RFB 003.008\n" {
		t.Fatalf("banner %q, %v", banner, err)
	}
	send := func(b []byte) []byte {
		t.Helper()
		if err := conn.Write(ctx, websocket.MessageBinary, b); err != nil {
			t.Fatal(err)
		}
		var out []byte
		for len(out) < len(b) {
			select {
			case p := <-got:
				out = append(out, p...)
			case <-ctx.Done():
				t.Fatalf("the VNC server got %d of %d bytes", len(out), len(b))
			}
		}
		return out
	}
	watching := cat(handshake38, pixelFormat, encodings, updateRequest, updateRequest)
	if out := send(watching); !bytes.Equal(out, watching) {
		t.Fatalf("the VNC server got %x, want %x", out, watching)
	}
	if at, n := lastInput(t, ts); at != nil || n != 1 {
		t.Fatalf("an untouched viewer: last_input %v, %d connections; want null, 1", at, n)
	}
	before := time.Now()
	send(cat(updateRequest, pointer))
	at, _ := lastInput(t, ts)
	if at == nil || at.Before(before.Add(-time.Second)) {
		t.Fatalf("after a pointer event: last_input %v", at)
	}
	conn.Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, n := lastInput(t, ts); n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the closed viewer is still counted")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCrossOriginViewerRefused(t *testing.T) {
	vnc, _ := fakeVNC(t)
	ts := newServer(t, vnc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws := "ws" + strings.TrimPrefix(ts.URL, "http") + "/websockify"
	_, res, err := websocket.Dial(ctx, ws, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http://evil.example"}}})
	if err == nil {
		t.Fatal("a page of another origin opened the desktop")
	}
	if res == nil || res.StatusCode != http.StatusForbidden {
		t.Fatalf("answer %v, want 403", res)
	}
}

func TestHealthWaitsForTheVNCServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there
	ts := newServer(t, addr)
	res, err := http.Get(ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("health with no VNC server: %d, want 503", res.StatusCode)
	}
}
