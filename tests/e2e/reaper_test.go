package e2e

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/activity"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/services/reaper/reapertest"
)

// clock is the reapers' fake time.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// TestReaperOnRealStack is the reaper issue's acceptance: the real API,
// provisioner, router-sync and Traefik as processes on the real engine, and
// two reapers sweeping at the same time with a fake clock.
//
//   - alice's workspace is used (activity recorded): never stopped;
//   - bob's is idle past 24 h: stopped with reason idle, its route gone;
//   - carol's is on hold: untouched throughout;
//   - past retention bob's is archived (verified), then deleted (container
//     and volume gone), each request appended once;
//   - berthctl restore brings bob's files back.
func TestReaperOnRealStack(t *testing.T) {
	s := newStack(t)
	admin, alice, bob, carol := s.token("root", "admin"), s.token("alice", "user"), s.token("bob", "user"), s.token("carol", "user")
	status, b, _ := call(t, "POST", "http://"+s.api+"/api/v1/images", admin, map[string]any{"ref": "berth/workspace-demo:latest"})
	require.Equal(t, 201, status, "%s", b)
	ws := map[string]wsView{"alice": s.launch(alice), "bob": s.launch(bob), "carol": s.launch(carol)}
	for name, w := range ws {
		tok := map[string]string{"alice": alice, "bob": bob, "carol": carol}[name]
		until(t, 30*time.Second, name+" through Traefik", func() bool { code, _ := get(t, w.URL, tok); return code == 200 })
	}
	status, b, _ = call(t, "PATCH", "http://"+s.api+"/api/v1/workspaces/"+ws["carol"].ID+"/lifecycle", admin, map[string]any{"hold": true, "hold_reason": "course CS-101"})
	require.Equal(t, 200, status, "%s", b)
	// bob saves work through Traefik, as his IDE would.
	req, _ := http.NewRequest("POST", ws["bob"].URL+"files", strings.NewReader(url.Values{"name": {"thesis.md"}, "content": {"chapter one"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+bob)
	res, err := quick.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 201, res.StatusCode)

	nc := s.natsConn()
	defer nc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := eventlog.Open(ctx, nc, eventlog.Options{})
	require.NoError(t, err)
	tracker, err := activity.Open(ctx, l.JetStream(), time.Second, slog.New(slog.DiscardHandler))
	require.NoError(t, err)

	t0 := time.Now()
	fake := &clock{now: t0}
	settings := reapertest.Settings{IdleTimeout: 24 * time.Hour, MinIdleTimeout: 15 * time.Minute, MaxIdleTimeout: 7 * 24 * time.Hour,
		Warning: time.Hour, Retention: 7 * 24 * time.Hour, ArchiveRetry: time.Hour}
	var reapers []*reapertest.Sweeper
	var projs []*events.Projection
	for _, name := range []string{"r1", "r2"} {
		proj := events.NewProjection()
		caughtUp, err := l.Follow(ctx, slog.New(slog.DiscardHandler), func(e events.Envelope) { _, _ = proj.Apply(e) })
		require.NoError(t, err)
		<-caughtUp
		projs = append(projs, proj)
		reapers = append(reapers, reapertest.New(reapertest.Config{Log: l, Workspaces: proj, Activity: tracker, Settings: settings, Now: fake.Now,
			Instance: name}))
	}
	// sweepBoth runs both reapers at once, once their projections have
	// seen everything the API shows.
	sweepBoth := func() {
		t.Helper()
		for _, p := range projs {
			until(t, 5*time.Second, "reaper projection caught up", func() bool {
				for _, w := range ws {
					var v wsView
					_, b, _ := call(t, "GET", "http://"+s.api+"/api/v1/workspaces/"+w.ID, admin, nil)
					_ = json.Unmarshal(b, &v)
					if got, _ := p.Workspace(w.ID); string(got.Status) != v.Status {
						return false
					}
				}
				return true
			})
		}
		var wg sync.WaitGroup
		for _, r := range reapers {
			wg.Go(func() { r.Sweep(ctx) })
		}
		wg.Wait()
	}
	statusOf := func(name string) string {
		var v wsView
		_, b, _ := call(t, "GET", "http://"+s.api+"/api/v1/workspaces/"+ws[name].ID, admin, nil)
		require.NoError(t, json.Unmarshal(b, &v))
		return v.Status
	}
	waitStatus := func(name, want string) {
		t.Helper()
		until(t, 60*time.Second, name+" "+want, func() bool { return statusOf(name) == want })
	}

	// A day later: alice was active ten minutes ago, bob never since launch.
	fake.Set(t0.Add(25 * time.Hour))
	require.NoError(t, tracker.Record(ctx, ws["alice"].ID, fake.Now().Add(-10*time.Minute)))
	sweepBoth()
	waitStatus("bob", "stopped")
	until(t, 5*time.Second, "bob's route gone", func() bool { code, _ := get(t, ws["bob"].URL, bob); return code == 404 })
	for _, name := range []string{"alice", "carol"} {
		assert.Equal(t, "running", statusOf(name), name)
		code, _ := get(t, ws[name].URL, map[string]string{"alice": alice, "carol": carol}[name])
		assert.Equal(t, 200, code, name)
	}

	// Eight days later: bob's stopped workspace passed retention: archived
	// (verified), then on the next sweep deleted. alice keeps working.
	fake.Set(t0.Add(8 * 24 * time.Hour))
	require.NoError(t, tracker.Record(ctx, ws["alice"].ID, fake.Now().Add(-time.Minute)))
	sweepBoth()
	waitStatus("bob", "archived")
	sweepBoth()
	waitStatus("bob", "deleted")
	assert.Equal(t, "running", statusOf("alice"))
	assert.Equal(t, "running", statusOf("carol"))

	hist := slices.DeleteFunc(s.history(admin, ws["bob"].ID), func(e historyEvent) bool { return e.Type == "berth.workspace.addressed" })
	var got []string
	for _, e := range hist {
		got = append(got, strings.TrimPrefix(e.Type, "berth.workspace.")+"/"+e.Actor)
	}
	assert.Equal(t, []string{"created/user:bob", "start_requested/user:bob", "running/service:provisioner",
		"stop_requested/reaper", "stopped/service:provisioner", "archive_requested/reaper", "archived/service:provisioner",
		"delete_requested/reaper", "deleted/service:provisioner"}, normaliseReaper(got), "each request appended once")
	assert.Equal(t, "idle", hist[3].Reason)
	assert.Equal(t, "retention", hist[5].Reason)
	assert.Equal(t, "retention", hist[7].Reason)
	var archived struct {
		Path      string `json:"path"`
		SizeBytes int64  `json:"size_bytes"`
		SHA256    string `json:"sha256"`
	}
	require.NoError(t, json.Unmarshal(hist[6].Data, &archived))
	fi, err := os.Stat(filepath.Join(s.dir, "data/archives", archived.Path))
	require.NoError(t, err, "the archive is kept")
	assert.Equal(t, fi.Size(), archived.SizeBytes)
	assert.Len(t, archived.SHA256, 64)
	for _, name := range []string{"alice", "carol"} {
		for _, e := range s.history(admin, ws[name].ID) {
			assert.NotContains(t, e.Actor, "reaper", "%s untouched by the reaper", name)
		}
	}
	_, err = s.cli.VolumeInspect(ctx, "berth-home-"+ws["bob"].ID)
	assert.Error(t, err, "bob's volume removed after the verified archive")

	// The admin restores bob's workspace with the CLI; bob starts it and
	// finds his file.
	ctl := exec.Command(filepath.Join(s.bin, "berthctl"), "restore", "bob")
	ctl.Env = append(os.Environ(), "BERTH_API_URL=http://"+s.api, "BERTH_TOKEN="+admin)
	out, err := ctl.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), `"restoring"`)
	waitStatus("bob", "stopped")
	s.lifecycle(bob, ws["bob"].ID, "start")
	until(t, 30*time.Second, "bob back through Traefik", func() bool { code, _ := get(t, ws["bob"].URL, bob); return code == 200 })
	code, body := get(t, ws["bob"].URL+"files/thesis.md", bob)
	assert.Equal(t, 200, code)
	assert.Equal(t, "chapter one", body)

	// The audit trail through the CLI: every event, across the API's pages.
	ctl = exec.Command(filepath.Join(s.bin, "berthctl"), "history", "bob", "-o", "json")
	ctl.Env = append(os.Environ(), "BERTH_API_URL=http://"+s.api, "BERTH_TOKEN="+admin)
	out, err = ctl.Output()
	require.NoError(t, err)
	var printed struct{ Events []historyEvent }
	require.NoError(t, json.Unmarshal(out, &printed))
	assert.Equal(t, len(s.history(admin, ws["bob"].ID)), len(printed.Events))
	ctl = exec.Command(filepath.Join(s.bin, "berthctl"), "history", "bob")
	ctl.Env = append(os.Environ(), "BERTH_API_URL=http://"+s.api, "BERTH_TOKEN="+admin)
	out, err = ctl.Output()
	require.NoError(t, err)
	assert.Equal(t, len(printed.Events), strings.Count(string(out), "\n"), "one line per event")
	assert.Contains(t, string(out), "restore_requested")
}

// normaliseReaper folds the two reaper replicas' actor names into one and
// leaves out addressed, which a start records only when the container's
// first health check fails (most starts, not all).
func normaliseReaper(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !strings.HasPrefix(s, "addressed/") {
			out = append(out, strings.NewReplacer("service:reaper:r1", "reaper", "service:reaper:r2", "reaper").Replace(s))
		}
	}
	return out
}

type historyEvent struct {
	ID            string          `json:"id"`
	Time          time.Time       `json:"time"`
	Type          string          `json:"type"`
	Actor         string          `json:"actor"`
	Reason        string          `json:"reason"`
	CorrelationID string          `json:"correlationid"`
	CausationID   string          `json:"causationid"`
	Data          json.RawMessage `json:"data"`
}

func (s *stack) history(token, id string) []historyEvent {
	s.t.Helper()
	status, b, _ := call(s.t, "GET", "http://"+s.api+"/api/v1/workspaces/"+id+"/events", token, nil)
	require.Equal(s.t, 200, status, "%s", b)
	var h struct{ Events []historyEvent }
	require.NoError(s.t, json.Unmarshal(b, &h))
	return h.Events
}
