package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/berthdev/berth/pkg/events/auditchain"
)

// exportFile writes body to a file and returns its path.
func exportFile(t *testing.T, body string) string {
	path := filepath.Join(t.TempDir(), "audit.ndjson")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAuditExportAndVerify: berthctl saves the API's export as it streams
// and verifies the file offline; an edited copy fails naming its line.
func TestAuditExportAndVerify(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/audit/export" || r.URL.Query().Get("since") != "2026-11-24T00:00:00Z" {
			http.Error(w, `{"code":"route_not_found","title":"Not Found","detail":"no"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		_, _ = w.Write([]byte(validExport(t)))
	}))
	defer srv.Close()
	out, _, err := runCtl(t, srv, "audit", "export", "--since", "2026-11-24T00:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	path := exportFile(t, out)
	got, _, err := runCtl(t, srv, "audit", "verify", path)
	if err != nil || !strings.Contains(got, "intact, 2 events") {
		t.Fatalf("verify: %q %v", got, err)
	}
	tampered := exportFile(t, strings.Replace(out, "alice", "mallory", 1))
	if _, _, err := runCtl(t, srv, "audit", "verify", tampered); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("tampered file: %v, want an error naming line 2", err)
	}
	if _, _, err := runCtl(t, srv, "audit", "verify"); err == nil {
		t.Fatal("verify without a file accepted")
	}
}

// TestAuditExportCutShort: an export the API cut short (no trailer) makes
// berthctl fail, so a script does not keep a file that cannot verify.
func TestAuditExportCutShort(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		full := validExport(t)
		_, _ = w.Write([]byte(full[:strings.LastIndex(strings.TrimSuffix(full, "\n"), "\n")+1])) // all but the trailer
	}))
	defer srv.Close()
	if _, _, err := runCtl(t, srv, "audit", "export"); err == nil || !strings.Contains(err.Error(), "trailer") {
		t.Fatalf("cut short: %v, want an error about the missing trailer", err)
	}
}

// TestAuditTable: entries print one per line, newest first as the API
// sends them, with the workspace's name.
func TestAuditTable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("actor") != "user:alice" {
			t.Errorf("filter not passed: %s", r.URL.RawQuery)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"entries":[
			{"sequence":9,"time":"2026-11-24T14:02:07Z","actor":"user:alice","action":"stop_requested","workspace":{"id":"w1","name":"alice"},"reason":"stop requested by alice"},
			{"sequence":4,"time":"2026-11-24T14:00:00Z","actor":"user:alice","action":"start_requested","workspace":{"id":"w1","name":"alice"},"reason":"start requested by alice"}]}`))
	}))
	defer srv.Close()
	out, _, err := runCtl(t, srv, "audit", "--actor", "user:alice")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "SEQ") || !strings.Contains(lines[1], "stop_requested") || !strings.Contains(lines[1], "alice") {
		t.Fatalf("table:\n%s", out)
	}
	if _, _, err := runCtl(t, srv, "audit", "-o", "yaml"); err == nil {
		t.Fatal("unknown output format accepted")
	}
	js, _, err := runCtl(t, srv, "audit", "--actor", "user:alice", "-o", "jsonl")
	if err != nil || strings.Count(js, "\n") != 2 {
		t.Fatalf("jsonl: %q %v", js, err)
	}
}

// validExport builds a two-event export with the real chain.
func validExport(t *testing.T) string {
	var buf bytes.Buffer
	w, err := newTestChain(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range []string{`{"actor":"user:alice","type":"berth.workspace.start_requested"}`, `{"actor":"service:provisioner","type":"berth.workspace.running"}`} {
		if err := w.Write(uint64(3+i), []byte(ev)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func newTestChain(buf *bytes.Buffer) (*auditchain.Writer, error) {
	return auditchain.NewWriter(buf, auditchain.Header{FirstSequence: 3, Since: "2026-11-24T00:00:00Z"})
}

// TestSystemRegister: the registration is sent as the API takes it.
func TestSystemRegister(t *testing.T) {
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body = r.Method + " " + r.URL.Path + " " + string(b)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"name":"lms","password":"p"}`))
	}))
	defer srv.Close()
	if _, _, err := runCtl(t, srv, "system", "register", "lms", "--read-events", "--types", "berth.intake.workspace.start", "--owners", "alice, bob"); err != nil {
		t.Fatal(err)
	}
	want := `POST /api/v1/systems {"name":"lms","owners":["alice","bob"],"read_events":true,"types":["berth.intake.workspace.start"]}`
	if body != want {
		t.Fatalf("sent %s\nwant %s", body, want)
	}
	if _, _, err := runCtl(t, srv, "system", "register", "lms"); err == nil {
		t.Fatal("register without types and owners accepted")
	}
}

// TestAuditTailFollows: tail prints the last entries oldest first, then
// (-f) the ones that come after, asking from the last one it printed.
func TestAuditTailFollows(t *testing.T) {
	asked := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		q := r.URL.Query()
		switch {
		case q.Get("order") == "":
			_, _ = w.Write([]byte(`{"entries":[{"sequence":5,"actor":"user:b","action":"stop_requested"},{"sequence":4,"actor":"user:a","action":"start_requested"}]}`))
		case q.Get("cursor") == "5":
			asked <- q.Get("cursor")
			_, _ = w.Write([]byte(`{"entries":[{"sequence":6,"actor":"service:reaper:r1","action":"idle_warning","reason":"idle"}]}`))
		default:
			asked <- q.Get("cursor")
			_, _ = w.Write([]byte(`{"entries":[]}`))
		}
	}))
	defer srv.Close()
	var out syncBuffer
	go func() {
		_ = run(context.Background(), []string{"--token", "t", "--api", srv.URL, "audit", "tail", "-n", "2", "-f", "--every", "10ms"}, &out, io.Discard)
	}()
	if got := <-asked; got != "5" {
		t.Fatalf("first follow asked after %q, want 5", got)
	}
	if got := <-asked; got != "6" {
		t.Fatalf("then after %q, want 6", got)
	}
	text := out.String()
	if i, j, k := strings.Index(text, "start_requested"), strings.Index(text, "stop_requested"), strings.Index(text, "idle_warning"); i < 0 || j < i || k < j {
		t.Fatalf("not oldest first, then the new one:\n%s", text)
	}
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestWorkspaceOps: start, stop and delete reach the API as the routes it
// takes; a bad --data is refused before any change is asked for.
func TestWorkspaceOps(t *testing.T) {
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte(`{"workspaces":[{"id":"w1","name":"alice"}]}`))
			return
		}
		asked = append(asked, r.Method+" "+r.URL.RequestURI())
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	for _, args := range [][]string{{"start", "alice"}, {"stop", "alice"}, {"delete", "alice", "--data", "archive"}, {"launch", "alice--lab"}} {
		if _, _, err := runCtl(t, srv, args...); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	if _, _, err := runCtl(t, srv, "delete", "alice", "--data", "shred"); err == nil || !strings.Contains(err.Error(), `must be one of "keep","archive","purge"`) {
		t.Fatalf("bad --data: %v", err)
	}
	want := "POST /api/v1/workspaces/w1/start|POST /api/v1/workspaces/w1/stop|DELETE /api/v1/workspaces/w1?data=archive|POST /api/v1/workspaces/launch"
	if got := strings.Join(asked, "|"); got != want {
		t.Fatalf("asked %s\nwant  %s", got, want)
	}
}
