package main

import (
	"context"
	"embed"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

//go:embed index.html berth-desktop.js
var pageFS embed.FS

type server struct {
	base     string // the workspace's base path, "" or "/workspace-<name>"
	vnc      string // the VNC server's address (loopback inside the container)
	novnc    string // noVNC's files (Debian's novnc package)
	maxConns int
	log      *slog.Logger
	now      func() time.Time

	mu        sync.Mutex
	conns     map[*websocket.Conn]struct{}
	slots     int
	lastInput time.Time
}

// routes serves the same paths with and without the base path: Traefik may
// strip the prefix (path mode) or not (subdomain mode, direct access).
func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /api/activity", s.activity)
	mux.HandleFunc("GET /websockify", s.websockify)
	mux.Handle("GET /{$}", http.FileServerFS(pageFS))
	mux.Handle("GET /berth-desktop.js", http.FileServerFS(pageFS))
	novnc := http.FileServer(http.Dir(s.novnc))
	mux.Handle("GET /", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		novnc.ServeHTTP(w, r)
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.base != "" && strings.HasPrefix(r.URL.Path, s.base+"/") {
			r.URL.Path = strings.TrimPrefix(r.URL.Path, s.base)
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		mux.ServeHTTP(w, r)
	})
}

// healthz is ready once the VNC server greets (its banner), not merely
// once this process listens.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(r.Context(), "tcp", s.vnc)
	if err != nil {
		http.Error(w, "the VNC server is not up: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	banner := make([]byte, 4)
	if _, err := io.ReadFull(c, banner); err != nil || string(banner) != "RFB " {
		http.Error(w, "the VNC server does not greet", http.StatusServiceUnavailable)
		return
	}
	_, _ = io.WriteString(w, "ok\n")
}

// activity is what the provisioner reads (the profile's
// http:/api/activity#last_input): when a person last typed, pointed or
// pasted. null until then: an open tab alone is not use.
func (s *server) activity(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	doc := struct {
		LastInput   *time.Time `json:"last_input"`
		Connections int        `json:"connections"`
	}{Connections: len(s.conns)}
	if !s.lastInput.IsZero() {
		t := s.lastInput
		doc.LastInput = &t
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(doc)
}

// websockify carries a viewer's websocket to the VNC server (what Debian's
// websockify does), reading the viewer's side for input. Same origin only:
// the library refuses a cross-origin handshake, so another site's page
// cannot drive the desktop with the user's cookie.
func (s *server) websockify(w http.ResponseWriter, r *http.Request) {
	if !s.reserve() {
		http.Error(w, "too many viewers open; close one", http.StatusTooManyRequests)
		return
	}
	defer s.release(nil)
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"binary"}})
	if err != nil {
		return // Accept has answered
	}
	conn.SetReadLimit(4 << 20) // a pasted text, at most
	d := net.Dialer{Timeout: 5 * time.Second}
	vnc, err := d.DialContext(r.Context(), "tcp", s.vnc)
	if err != nil {
		s.log.Error("dial the VNC server", "addr", s.vnc, "err", err)
		conn.Close(websocket.StatusInternalError, "the desktop is not up")
		return
	}
	s.add(conn)
	defer s.release(conn)
	s.log.Info("viewer connected", "remote", r.RemoteAddr)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() { // VNC server → viewer
		defer cancel()
		buf := make([]byte, 64<<10)
		for {
			n, err := vnc.Read(buf)
			if n > 0 && conn.Write(ctx, websocket.MessageBinary, buf[:n]) != nil {
				return
			}
			if err != nil {
				conn.Close(websocket.StatusNormalClosure, "the desktop closed the connection")
				return
			}
		}
	}()
	err = s.fromViewer(ctx, conn, vnc)
	_ = vnc.Close()
	conn.CloseNow()
	s.log.Info("viewer disconnected", "remote", r.RemoteAddr, "err", err)
}

// fromViewer copies the viewer's messages to the VNC server until either
// ends, noting the time of each person's input.
func (s *server) fromViewer(ctx context.Context, conn *websocket.Conn, vnc net.Conn) error {
	var in inputReader
	reading := true
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		if reading {
			n, err := in.Feed(b)
			if n > 0 {
				s.noteInput()
			}
			if err != nil {
				// The bytes still flow; only the activity reading stops.
				s.log.Warn("viewer stream not understood; its input is no longer counted", "err", err)
				reading = false
			}
		}
		if _, err := vnc.Write(b); err != nil {
			return err
		}
	}
}

func (s *server) noteInput() {
	s.mu.Lock()
	s.lastInput = s.now()
	s.mu.Unlock()
}

func (s *server) reserve() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.slots >= s.maxConns {
		return false
	}
	s.slots++
	return true
}

func (s *server) add(c *websocket.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = map[*websocket.Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
}

// release forgets c (nil: gives the slot back).
func (s *server) release(c *websocket.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c == nil {
		s.slots--
		return
	}
	delete(s.conns, c)
}

func (s *server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close(websocket.StatusGoingAway, "the workspace is stopping")
	}
}
