package main

import (
	"context"
	"embed"
	"encoding/json"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/creack/pty"
)

//go:embed page.html page.js
var pageFS embed.FS

var page = template.Must(template.ParseFS(pageFS, "page.html"))

type server struct {
	name, base, home, shell string
	termJS                  string // the terminal emulator (Debian's libjs-term.js)
	heartbeat               string // touched while a terminal is open
	maxTerms                int
	beat                    time.Duration
	log                     *slog.Logger

	mu    sync.Mutex
	slots int // terminals open or opening
	terms map[*terminal]struct{}
}

// routes serves the same paths with and without the base path: Traefik may
// strip the prefix (path mode) or not (subdomain mode, direct access).
func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("GET /tty", s.tty)
	mux.Handle("GET /page.js", http.FileServerFS(pageFS))
	mux.HandleFunc("GET /term.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=86400")
		http.ServeFile(w, r, s.termJS)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.base != "" && strings.HasPrefix(r.URL.Path, s.base+"/") {
			r.URL.Path = strings.TrimPrefix(r.URL.Path, s.base)
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		mux.ServeHTTP(w, r)
	})
}

func (s *server) index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'")
	if err := page.Execute(w, map[string]string{"Name": s.name, "Base": s.base}); err != nil {
		s.log.Warn("page", "err", err)
	}
}

// terminal is one open websocket with its shell.
type terminal struct {
	conn *websocket.Conn
	cmd  *exec.Cmd
	pty  *os.File
}

// message is what the page sends: input, or the terminal's new size.
type message struct {
	Type string `json:"type"` // "input" or "resize"
	Data string `json:"data,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
	Rows uint16 `json:"rows,omitempty"`
}

// tty upgrades to a websocket (same origin only: the library refuses a
// cross-origin handshake, so another site's page cannot drive the shell
// with the user's cookie) and runs a login shell on a pseudo-terminal.
func (s *server) tty(w http.ResponseWriter, r *http.Request) {
	if !s.reserve() {
		http.Error(w, "too many terminals open; close one", http.StatusTooManyRequests)
		return
	}
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		s.release(nil)
		return // Accept has answered
	}
	conn.SetReadLimit(1 << 20)
	cmd := exec.Command(s.shell, "-l")
	cmd.Dir = s.home
	cmd.Env = append(os.Environ(), "TERM=xterm-256color")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 80, Rows: 24})
	if err != nil {
		s.log.Error("start shell", "shell", s.shell, "err", err)
		conn.Close(websocket.StatusInternalError, "the shell did not start")
		s.release(nil)
		return
	}
	t := &terminal{conn: conn, cmd: cmd, pty: f}
	s.add(t)
	s.touch()
	defer s.release(t)
	s.log.Info("terminal opened", "pid", cmd.Process.Pid)
	go func() { // shell → browser; the shell's end closes the websocket
		buf := make([]byte, 32<<10)
		for {
			n, err := f.Read(buf)
			if n > 0 && conn.Write(r.Context(), websocket.MessageBinary, buf[:n]) != nil {
				return
			}
			if err != nil { // EIO once the shell has exited
				conn.Close(websocket.StatusNormalClosure, "the shell exited")
				return
			}
		}
	}()
	s.input(r.Context(), t) // browser → shell, until the websocket ends
	t.end()
	err = cmd.Wait()
	s.log.Info("terminal closed", "pid", cmd.Process.Pid, "err", err)
	conn.CloseNow()
}

func (s *server) input(ctx context.Context, t *terminal) {
	for {
		_, b, err := t.conn.Read(ctx)
		if err != nil {
			return
		}
		var m message
		if json.Unmarshal(b, &m) != nil {
			continue // not ours: ignored
		}
		switch m.Type {
		case "input":
			if _, err := io.WriteString(t.pty, m.Data); err != nil {
				return
			}
		case "resize":
			if m.Cols > 0 && m.Rows > 0 {
				_ = pty.Setsize(t.pty, &pty.Winsize{Cols: m.Cols, Rows: m.Rows})
			}
		}
	}
}

// end hangs up the shell's session (as closing a terminal window does)
// and closes the pseudo-terminal.
func (t *terminal) end() {
	if t.cmd.Process != nil {
		_ = syscall.Kill(-t.cmd.Process.Pid, syscall.SIGHUP)
		_ = t.cmd.Process.Signal(syscall.SIGHUP)
	}
	_ = t.pty.Close()
}

// reserve takes a terminal slot; release gives it back (and forgets t).
func (s *server) reserve() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.slots >= s.maxTerms {
		return false
	}
	s.slots++
	return true
}

func (s *server) add(t *terminal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.terms == nil {
		s.terms = map[*terminal]struct{}{}
	}
	s.terms[t] = struct{}{}
}

func (s *server) release(t *terminal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slots--
	delete(s.terms, t)
}

func (s *server) open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.terms)
}

func (s *server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t := range s.terms {
		t.conn.Close(websocket.StatusGoingAway, "the workspace is stopping")
		t.end()
	}
}

// heartbeats touches the heartbeat file while a terminal is open: an open
// terminal is a person at work, even while they read.
func (s *server) heartbeats(ctx context.Context) {
	tick := time.NewTicker(s.beat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if s.open() > 0 {
				s.touch()
			}
		}
	}
}

func (s *server) touch() {
	if err := os.MkdirAll(filepath.Dir(s.heartbeat), 0o755); err != nil {
		s.log.Warn("heartbeat", "err", err)
		return
	}
	now := time.Now()
	if err := os.Chtimes(s.heartbeat, now, now); err != nil {
		if err := os.WriteFile(s.heartbeat, nil, 0o644); err != nil {
			s.log.Warn("heartbeat", "err", err)
		}
	}
}
