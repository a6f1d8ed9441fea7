// Command workspace-demo stands in for a browser IDE in tests and demos: a
// tiny static HTTP server that shows the workspace's name and mounted project
// files, writes files into the home volume (to prove persistence), honours a
// base path, and answers a health check. It runs as the only process of a
// FROM-scratch image.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"
)

type server struct {
	name     string
	base     string
	home     string
	projects string
	started  time.Time
}

func main() {
	s := &server{
		name:    env("BERTH_WORKSPACE_NAME", "workspace"),
		base:    strings.TrimRight(env("BERTH_BASE_PATH", ""), "/"),
		home:    env("HOME", "/home/coder"),
		started: time.Now(),
	}
	s.projects = env("BERTH_PROJECTS_DIR", filepath.Join(s.home, "project"))
	addr := ":" + env("PORT", "8080")
	srv := &http.Server{Addr: addr, Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	slog.Info("workspace-demo listening", "addr", addr, "name", s.name, "base", s.base)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		slog.Error("serve", "err", err)
		os.Exit(1)
	}
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// routes serves the same pages with and without the base path: Traefik may
// strip the prefix (path mode) or not (subdomain mode, direct access).
func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.health)
	mux.HandleFunc("GET /headers", s.headers)
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("GET /files/{name}", s.readFile)
	mux.HandleFunc("POST /files", s.writeFile)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.base != "" && strings.HasPrefix(r.URL.Path, s.base+"/") {
			r.URL.Path = strings.TrimPrefix(r.URL.Path, s.base)
		}
		mux.ServeHTTP(w, r)
	})
}

// headers echoes the request headers, so tests can prove what the proxy
// passes on (and that the platform's credentials are not among them).
func (s *server) headers(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(r.Header)
}

func (s *server) health(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "ok", "workspace": s.name, "uptime_seconds": int(time.Since(s.started).Seconds())})
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Name}} · Berth</title></head>
<body>
<h1>Workspace {{.Name}}</h1>
<h2>Projects</h2>
<ul>{{range .Projects}}<li>{{.}}</li>{{else}}<li>(no project folders mounted)</li>{{end}}</ul>
<h2>Your files</h2>
<ul>{{range .Files}}<li><a href="files/{{.}}">{{.}}</a></li>{{else}}<li>(none yet)</li>{{end}}</ul>
<form method="post" action="files">
<input name="name" placeholder="notes.txt"> <textarea name="content"></textarea> <button>Save</button>
</form>
</body></html>
`))

func (s *server) index(w http.ResponseWriter, _ *http.Request) {
	data := struct {
		Name            string
		Projects, Files []string
	}{Name: s.name, Projects: listTree(s.projects, 2, 200), Files: s.homeFiles()}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = page.Execute(w, data)
}

// listTree lists paths under root, depth-limited, relative to root.
func listTree(root string, depth, limit int) []string {
	var out []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if strings.Count(rel, string(filepath.Separator)) >= depth {
			return fs.SkipDir
		}
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		if len(out) >= limit {
			return fs.SkipAll
		}
		return nil
	})
	return out
}

func (s *server) homeFiles() []string {
	entries, _ := os.ReadDir(s.home)
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

var fileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func (s *server) writeFile(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	name := r.PostFormValue("name")
	if !fileName.MatchString(name) {
		http.Error(w, "name must be a plain file name", http.StatusBadRequest)
		return
	}
	if err := os.WriteFile(filepath.Join(s.home, name), []byte(r.PostFormValue("content")), 0o644); err != nil {
		http.Error(w, "write: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, "saved %s\n", name)
}

func (s *server) readFile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !fileName.MatchString(name) {
		http.Error(w, "name must be a plain file name", http.StatusBadRequest)
		return
	}
	b, err := os.ReadFile(filepath.Join(s.home, name))
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(b)
}
