package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/events/auditchain"
	"github.com/berthdev/berth/pkg/events/intake"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
)

// The export is NDJSON and forwardAuth's pages for browsers HTML: the
// OpenAPI check reads them as text.
func init() {
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", openapi3filter.FileBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.FileBodyDecoder)
	openapi3filter.RegisterBodyDecoder("application/schema+json", openapi3filter.JSONBodyDecoder)
}

// moment is the live state of a workspace at one point of a scenario.
type moment struct {
	at   time.Time
	live map[string]any
}

// auditScenario runs a workspace's life through the API (the provisioner's
// observations written as it would) and records the live state after each
// step.
func auditScenario(t *testing.T, e *env, a *api) (id string, moments []moment) {
	admin, alice := e.token("root", "admin"), e.token("alice", "user")
	a.addImage(admin, demoImage)
	r := a.do("POST", "/api/v1/workspaces", admin, map[string]any{"name": "audited", "owner": "alice"})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	id = r.str(t, "id")
	record := func() {
		time.Sleep(5 * time.Millisecond) // distinct moments: the next event is later than this one
		moments = append(moments, moment{at: time.Now(), live: a.do("GET", wsPath(id), admin, nil).json(t)})
		time.Sleep(5 * time.Millisecond)
	}
	record()
	steps := []func(){
		func() { require.Equal(t, http.StatusAccepted, a.do("POST", wsPath(id, "/start"), alice, nil).Status) },
		func() { e.provisionerSays(id, &events.Running{ContainerID: "c1", IP: "10.0.0.7", Port: 8080}) },
		func() { require.Equal(t, http.StatusAccepted, a.do("POST", wsPath(id, "/stop"), alice, nil).Status) },
		func() { e.provisionerSays(id, &events.Stopped{}) },
		func() {
			require.Equal(t, http.StatusOK, a.do("PATCH", wsPath(id), admin, map[string]any{"description": "for the audit"}).Status)
		},
		func() {
			require.Equal(t, http.StatusOK, a.do("PATCH", wsPath(id, "/lifecycle"), admin, map[string]any{"hold": true, "hold_reason": "exam"}).Status)
		},
		func() {
			r := a.do("DELETE", wsPath(id)+"?data=archive", admin, nil)
			require.Equal(t, http.StatusAccepted, r.Status, "%s", r.Body)
		},
		func() {
			e.provisionerSays(id, &events.Deleted{VolumeRemoved: true, Archive: &events.ArchiveInfo{Path: id + "/9.tar.gz", SizeBytes: 42, SHA256: strings.Repeat("a", 64)}})
		},
		func() {
			r := a.do("POST", wsPath(id, "/restore"), admin, nil)
			require.Equal(t, http.StatusAccepted, r.Status, "%s", r.Body)
		},
		func() {
			e.provisionerSays(id, &events.Restored{Path: id + "/9.tar.gz", SHA256: strings.Repeat("a", 64), Files: 3})
		},
	}
	for _, step := range steps {
		step()
		a.waitVersion(admin, id)
		record()
	}
	return id, moments
}

// waitVersion waits until the API's projection has every event of the
// workspace (the provisioner's are written behind its back).
func (a *api) waitVersion(token, id string) {
	a.e.t.Helper()
	time.Sleep(20 * time.Millisecond)
	prev := -1.0
	require.Eventually(a.e.t, func() bool {
		v, _ := a.do("GET", wsPath(id), token, nil).json(a.e.t)["version"].(float64)
		settled := v == prev
		prev = v
		return settled
	}, 5*time.Second, 30*time.Millisecond)
}

// TestStateAtEveryMoment: the state the API folds for a past moment is the
// live state it answered at that moment, at every step of the scenario;
// before the workspace existed there is none.
func TestStateAtEveryMoment(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI()
	id, moments := auditScenario(t, e, a)
	auditor, alice, bob := e.token("ida", "auditor"), e.token("alice", "user"), e.token("bob", "user")
	for i, m := range moments {
		at := url.QueryEscape(m.at.UTC().Format(time.RFC3339Nano))
		for _, who := range []string{auditor, alice} {
			r := a.do("GET", wsPath(id, "/state?at="+at), who, nil)
			require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
			got := r.json(t)["workspace"].(map[string]any)
			for _, field := range []string{"status", "desired", "description", "hold", "hold_reason", "version", "endpoint", "archive", "volume_kept", "updated_at"} {
				assert.Equal(t, m.live[field], got[field], "moment %d, %s", i, field)
			}
			assert.Equal(t, m.live["version"], r.json(t)["sequence"], "moment %d: folded to the live version", i)
		}
	}
	before := url.QueryEscape(moments[0].at.Add(-time.Minute).UTC().Format(time.RFC3339))
	expectProblem(t, a.do("GET", wsPath(id, "/state?at="+before), auditor, nil), http.StatusNotFound, "workspace_not_found")
	expectProblem(t, a.do("GET", wsPath(id, "/state?at="+before), bob, nil), http.StatusNotFound, "workspace_not_found")
	expectProblem(t, a.do("GET", wsPath(id, "/state?at=yesterday"), auditor, nil), http.StatusBadRequest, "invalid_query")
	r := a.do("GET", wsPath(id, "/state?at="+url.QueryEscape(time.Now().UTC().Format(time.RFC3339Nano))), bob, nil)
	expectProblem(t, r, http.StatusNotFound, "workspace_not_found") // not bob's: as if it did not exist
}

// TestAuditLog: admins and auditors read who did what across the log,
// filtered and paged both ways; users may not; auditors change nothing.
func TestAuditLog(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI()
	id, _ := auditScenario(t, e, a)
	auditor, admin, alice := e.token("ida", "auditor"), e.token("root", "admin"), e.token("alice", "user")

	type entry struct {
		Sequence  uint64 `json:"sequence"`
		Actor     string `json:"actor"`
		Action    string `json:"action"`
		Origin    string `json:"origin"`
		Workspace *struct {
			ID, Name string
		} `json:"workspace"`
	}
	page := func(token, q string) ([]entry, uint64) {
		r := a.do("GET", "/api/v1/audit?"+q, token, nil)
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		var body struct {
			Entries []entry `json:"entries"`
			Next    uint64  `json:"next"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &body))
		return body.Entries, body.Next
	}
	all, next := page(auditor, "limit=1000")
	assert.Zero(t, next)
	require.Len(t, all, 12) // image added, created, start, running, stop, stopped, updated, hold, delete, deleted, restore, restored
	for i := 1; i < len(all); i++ {
		assert.Greater(t, all[i-1].Sequence, all[i].Sequence, "newest first")
	}
	mine, _ := page(admin, "actor=user:alice&order=oldest")
	require.Len(t, mine, 2)
	assert.Equal(t, []string{"start_requested", "stop_requested"}, []string{mine[0].Action, mine[1].Action})
	assert.Equal(t, "user", mine[0].Origin)
	assert.Equal(t, "audited", mine[0].Workspace.Name)
	byName, _ := page(auditor, "workspace=audited&type=berth.workspace.running")
	require.Len(t, byName, 1)
	assert.Equal(t, id, byName[0].Workspace.ID)
	assert.Equal(t, "service", byName[0].Origin)

	for _, order := range []string{"oldest", "newest"} {
		var seqs []uint64
		cursor := uint64(0)
		for pages := 0; ; pages++ {
			q := "limit=2&workspace=" + id + "&order=" + order
			if cursor > 0 {
				q += "&cursor=" + itoa(cursor)
			}
			got, next := page(auditor, q)
			for _, g := range got {
				seqs = append(seqs, g.Sequence)
			}
			if next == 0 {
				break
			}
			cursor = next
			require.Less(t, pages, 20, "paging never ends")
		}
		assert.Len(t, seqs, 11, "%s: every event of the workspace once", order) // created ... restored
		for i := 1; i < len(seqs); i++ {
			assert.Equal(t, order == "oldest", seqs[i-1] < seqs[i], "%s order", order)
		}
	}

	expectProblem(t, a.do("GET", "/api/v1/audit", alice, nil), http.StatusForbidden, "forbidden")
	expectProblem(t, a.do("GET", "/api/v1/audit", "", nil), http.StatusUnauthorized, "unauthenticated")
	expectProblem(t, a.do("POST", "/api/v1/workspaces", auditor, map[string]any{"name": "sneaky"}), http.StatusForbidden, "forbidden")
	expectProblem(t, a.do("GET", "/api/v1/workspaces", auditor, nil), http.StatusForbidden, "forbidden")
	for _, q := range []string{"since=monday", "until=2026-13-01T00:00:00Z", "order=sideways", "cursor=0", "cursor=x", "limit=0", "limit=1001",
		"since=2026-11-24T10:00:00Z&until=2026-11-24T09:00:00Z"} {
		expectProblem(t, a.do("GET", "/api/v1/audit?"+q, auditor, nil), http.StatusBadRequest, "invalid_query")
	}
	// until is inclusive both ways, however the log stored the event.
	var newest struct {
		Entries []struct {
			Sequence uint64    `json:"sequence"`
			Time     time.Time `json:"time"`
		} `json:"entries"`
	}
	require.NoError(t, json.Unmarshal(a.do("GET", "/api/v1/audit?limit=1", auditor, nil).Body, &newest))
	until := url.QueryEscape(newest.Entries[0].Time.UTC().Format(time.RFC3339Nano))
	for _, order := range []string{"newest", "oldest"} {
		got, _ := page(auditor, "limit=1000&order="+order+"&until="+until)
		require.Len(t, got, len(all), "%s first, until the last event's own time", order)
	}
	future := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	none, _ := page(auditor, "since="+future)
	assert.Empty(t, none)
}

// TestAuditExportVerifies: the export of the whole log, and of a window,
// verifies; a user may not export.
func TestAuditExportVerifies(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI()
	id, moments := auditScenario(t, e, a)
	auditor := e.token("ida", "auditor")
	// A faulty or hostile writer's message: left out, not fatal.
	js, err := jetstream.New(natstest.Conn(t, e.nats))
	require.NoError(t, err)
	_, err = js.Publish(context.Background(), events.WorkspaceSubject(id, events.TypeRunning), []byte("not json"))
	require.NoError(t, err)
	r := a.do("GET", "/api/v1/audit/export", auditor, nil)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	assert.Equal(t, "application/x-ndjson", r.Header.Get("Content-Type"))
	n, err := auditchain.Verify(bytes.NewReader(r.Body))
	require.NoError(t, err)
	list := a.do("GET", "/api/v1/audit?limit=1000", auditor, nil)
	require.Equal(t, http.StatusOK, list.Status, "%s", list.Body)
	all, _ := list.json(t)["entries"].([]any)
	assert.Equal(t, len(all), n, "every event of the log")

	since := url.QueryEscape(moments[2].at.UTC().Format(time.RFC3339Nano))
	until := url.QueryEscape(moments[4].at.UTC().Format(time.RFC3339Nano))
	w := a.do("GET", "/api/v1/audit/export?since="+since+"&until="+until, auditor, nil)
	require.Equal(t, http.StatusOK, w.Status)
	n, err = auditchain.Verify(bytes.NewReader(w.Body))
	require.NoError(t, err)
	assert.Equal(t, 2, n, "stop_requested and stopped")

	edited := bytes.Replace(w.Body, []byte("user:alice"), []byte("user:bob"), 1)
	_, err = auditchain.Verify(bytes.NewReader(edited))
	var bad *auditchain.BadLine
	require.True(t, errors.As(err, &bad), "%v", err)
	assert.Equal(t, 2, bad.Line)
	assert.True(t, strings.Contains(bad.Reason, "edited"), bad.Reason)

	expectProblem(t, a.do("GET", "/api/v1/audit/export", e.token("alice", "user"), nil), http.StatusForbidden, "forbidden")
}

// TestIntakeSchemasServed: every intake type's schema is served without a
// token; an unknown type is a 404 with its code.
func TestIntakeSchemasServed(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI()
	for _, typ := range intake.Types {
		r := a.do("GET", "/api/v1/schemas/"+typ, "", nil)
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", typ, r.Body)
		assert.Equal(t, "application/schema+json", r.Header.Get("Content-Type"))
		assert.Equal(t, typ, r.json(t)["title"])
	}
	expectProblem(t, a.do("GET", "/api/v1/schemas/berth.intake.workspace.explode", "", nil), http.StatusNotFound, "schema_not_found")
	expectProblem(t, a.do("GET", "/api/v1/schemas/..%2F..%2Fetc%2Fpasswd", "", nil), http.StatusNotFound, "schema_not_found")
}
