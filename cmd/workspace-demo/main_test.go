package main

import (
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDemoServer(t *testing.T) {
	home := t.TempDir()
	proj := filepath.Join(home, "project", "course-101")
	if err := os.MkdirAll(proj, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proj, "README.md"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &server{name: "alice", base: "/workspace-alice", home: home, projects: filepath.Join(home, "project"), started: time.Now()}
	h := s.routes()
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec
	}
	for _, p := range []string{"/", "/workspace-alice/"} {
		rec := get(p)
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), "Workspace alice") || !strings.Contains(rec.Body.String(), "course-101/README.md") {
			t.Fatalf("%s: %d %s", p, rec.Code, rec.Body)
		}
	}
	if rec := get("/workspace-alice/healthz"); rec.Code != 200 {
		t.Fatalf("healthz %d", rec.Code)
	}
	post := func(name, content string) int {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/workspace-alice/files", strings.NewReader(url.Values{"name": {name}, "content": {content}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	if c := post("note.txt", "persist me"); c != 201 {
		t.Fatalf("write: %d", c)
	}
	if c := post("../escape", "x"); c != 400 {
		t.Fatalf("path escape accepted: %d", c)
	}
	if rec := get("/files/note.txt"); rec.Body.String() != "persist me" {
		t.Fatalf("read back %q", rec.Body)
	}
	if rec := get("/files/missing.txt"); rec.Code != 404 {
		t.Fatalf("missing file: %d", rec.Code)
	}
}
