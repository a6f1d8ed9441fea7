package main

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/activity"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
)

// provisionerSays appends observations as the provisioner would.
func (e *env) provisionerSays(id string, ps ...events.Payload) {
	e.t.Helper()
	l, err := eventlog.Open(context.Background(), natstest.Conn(e.t, e.nats), eventlog.Options{})
	require.NoError(e.t, err)
	for _, p := range ps {
		evs, err := l.Read(context.Background(), id)
		require.NoError(e.t, err)
		ws, err := events.Fold(evs)
		require.NoError(e.t, err)
		ev, err := events.New(id, p, events.Meta{Source: "test", Actor: "service:provisioner"}, time.Now())
		require.NoError(e.t, err)
		_, err = l.Append(context.Background(), ev, ws.Version)
		require.NoError(e.t, err)
	}
}

func (a *api) waitStatus(token, id, status string) {
	a.e.t.Helper()
	require.Eventually(a.e.t, func() bool { return a.do("GET", wsPath(id), token, nil).str(a.e.t, "status") == status },
		5*time.Second, 10*time.Millisecond, "status %s", status)
}

func (a *api) eventCount(token, id string) int {
	var n int
	for _, ev := range a.do("GET", wsPath(id, "/events"), token, nil).json(a.e.t)["events"].([]any) {
		_ = ev
		n++
	}
	return n
}

func TestLifecycleSettingsRestoreAndHeartbeat(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI("--idle-timeout-min", "1h", "--idle-timeout-max", "48h")
	admin, carol, dave := e.token("root", "admin"), e.token("carol", "user"), e.token("dave", "user")
	a.addImage(admin, demoImage)
	create := func(name string) string {
		r := a.do("POST", "/api/v1/workspaces", admin, map[string]any{"name": name, "image": demoImage, "owner": "carol"})
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
		return r.str(t, "id")
	}
	id := create("carol-box")

	// Idle timeout: the owner may set it within the bounds.
	r := a.do("PATCH", wsPath(id, "/lifecycle"), carol, map[string]any{"idle_timeout_seconds": 7200})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	assert.EqualValues(t, 7200, r.json(t)["idle_timeout_seconds"])
	n := a.eventCount(admin, id)
	r = a.do("PATCH", wsPath(id, "/lifecycle"), carol, map[string]any{"idle_timeout_seconds": 7200})
	require.Equal(t, http.StatusOK, r.Status)
	assert.Equal(t, n, a.eventCount(admin, id), "an unchanged value records nothing")
	r = a.do("PATCH", wsPath(id, "/lifecycle"), carol, map[string]any{"idle_timeout_seconds": 60})
	expectProblem(t, r, http.StatusUnprocessableEntity, "validation_failed")
	assert.Equal(t, []string{"out_of_range"}, r.fieldCodes(t))
	expectProblem(t, a.do("PATCH", wsPath(id, "/lifecycle"), carol, map[string]any{"idle_timeout_seconds": 49 * 3600}), http.StatusUnprocessableEntity, "validation_failed")
	expectProblem(t, a.do("PATCH", wsPath(id, "/lifecycle"), carol, map[string]any{}), http.StatusUnprocessableEntity, "validation_failed")
	expectProblem(t, a.do("PATCH", wsPath(id, "/lifecycle"), carol, map[string]any{"idle": 1}), http.StatusBadRequest, "malformed_json")
	expectProblem(t, a.do("PATCH", wsPath(id, "/lifecycle"), dave, map[string]any{"idle_timeout_seconds": 0}), http.StatusNotFound, "workspace_not_found")

	// Hold: admins only.
	expectProblem(t, a.do("PATCH", wsPath(id, "/lifecycle"), carol, map[string]any{"hold": true}), http.StatusForbidden, "forbidden")
	r = a.do("PATCH", wsPath(id, "/lifecycle"), admin, map[string]any{"hold": true, "hold_reason": " exam week "})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	assert.Equal(t, true, r.json(t)["hold"])
	assert.Equal(t, "exam week", r.str(t, "hold_reason"))
	hist := a.do("GET", wsPath(id, "/events"), admin, nil)
	assert.Contains(t, string(hist.Body), "hold set, hold reason changed by root")

	// Heartbeat: only a running workspace, recorded in the activity bucket.
	expectProblem(t, a.do("POST", wsPath(id, "/activity"), carol, nil), http.StatusConflict, "illegal_transition")
	require.Equal(t, http.StatusAccepted, a.do("POST", wsPath(id, "/start"), carol, nil).Status)
	e.provisionerSays(id, &events.Running{ContainerID: "c", IP: "10.0.0.9", Port: 8080})
	a.waitStatus(admin, id, "running")
	before := time.Now()
	r = a.do("POST", wsPath(id, "/activity"), carol, nil)
	require.Equal(t, http.StatusNoContent, r.Status, "%s", r.Body)
	l, err := eventlog.Open(context.Background(), natstest.Conn(t, e.nats), eventlog.Options{})
	require.NoError(t, err)
	tracker, err := activity.Open(context.Background(), l.JetStream(), time.Second, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		seen, ok, err := tracker.LastSeen(context.Background(), id)
		return err == nil && ok && !seen.Before(before.Add(-time.Second))
	}, 5*time.Second, 10*time.Millisecond)
	expectProblem(t, a.do("POST", wsPath(id, "/activity"), dave, nil), http.StatusNotFound, "workspace_not_found")

	// Restore: admins only, only deleted workspaces with a verified archive,
	// and only while their name is free.
	expectProblem(t, a.do("POST", wsPath(id, "/restore"), admin, nil), http.StatusConflict, "illegal_transition")
	archiveAndDelete := func(id string, archived bool) {
		require.Equal(t, http.StatusAccepted, a.do("POST", wsPath(id, "/stop"), admin, nil).Status)
		e.provisionerSays(id, &events.Stopped{})
		if archived {
			e.provisionerSays(id, &events.ArchiveRequested{}, &events.Archived{Path: id + "/9.tar.gz", SizeBytes: 100, SHA256: "ab12"})
		}
		e.provisionerSays(id, &events.DeleteRequested{}, &events.Deleted{})
		a.waitStatus(admin, id, "deleted")
	}
	archiveAndDelete(id, true)
	expectProblem(t, a.do("POST", wsPath(id, "/restore"), carol, nil), http.StatusForbidden, "forbidden")
	taker := create("carol-box") // the name is free again once deleted
	expectProblem(t, a.do("POST", wsPath(id, "/restore"), admin, nil), http.StatusConflict, "name_taken")
	require.Equal(t, http.StatusAccepted, a.do("DELETE", wsPath(taker), admin, nil).Status)
	e.provisionerSays(taker, &events.Deleted{})
	a.waitStatus(admin, taker, "deleted")
	r = a.do("POST", wsPath(id, "/restore"), admin, nil)
	require.Equal(t, http.StatusAccepted, r.Status, "%s", r.Body)
	assert.Equal(t, "restoring", r.str(t, "status"))
	require.Equal(t, http.StatusAccepted, a.do("POST", wsPath(id, "/restore"), admin, nil).Status, "idempotent")

	plain := create("plain")
	require.Equal(t, http.StatusAccepted, a.do("POST", wsPath(plain, "/start"), admin, nil).Status)
	e.provisionerSays(plain, &events.Running{ContainerID: "c2", IP: "10.0.0.8", Port: 8080})
	archiveAndDelete(plain, false)
	expectProblem(t, a.do("POST", wsPath(plain, "/restore"), admin, nil), http.StatusConflict, "no_archive")
}

// Other systems report activity on the intake subject; malformed reports
// are dead-lettered with the reason, never dropped silently.
func TestIntakeActivity(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI()
	admin := e.token("root", "admin")
	a.addImage(admin, demoImage)
	r := a.do("POST", "/api/v1/workspaces", admin, map[string]any{"name": "busy", "image": demoImage, "owner": "erin"})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	id := r.str(t, "id")
	require.Equal(t, http.StatusAccepted, a.do("POST", wsPath(id, "/start"), admin, nil).Status)
	e.provisionerSays(id, &events.Running{ContainerID: "c", IP: "10.0.0.9", Port: 8080})
	a.waitStatus(admin, id, "running")

	nc := natstest.Conn(t, e.nats)
	l, err := eventlog.Open(context.Background(), nc, eventlog.Options{})
	require.NoError(t, err)
	tracker, err := activity.Open(context.Background(), l.JetStream(), time.Second, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NoError(t, nc.Publish(events.IntakeActivitySubject, []byte(`{"workspace_id":"`+id+`"}`)))
	require.Eventually(t, func() bool { _, ok, _ := tracker.LastSeen(context.Background(), id); return ok }, 5*time.Second, 10*time.Millisecond)
	// A report as a CloudEvent (binary mode) counts too.
	r = a.do("POST", "/api/v1/workspaces", admin, map[string]any{"name": "busy2", "image": demoImage, "owner": "erin"})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	id2 := r.str(t, "id")
	require.Equal(t, http.StatusAccepted, a.do("POST", wsPath(id2, "/start"), admin, nil).Status)
	e.provisionerSays(id2, &events.Running{ContainerID: "c2", IP: "10.0.0.10", Port: 8080})
	a.waitStatus(admin, id2, "running")
	ce := nats.NewMsg(events.IntakeActivitySubject)
	ce.Header = nats.Header{"ce-specversion": {"1.0"}, "ce-id": {"a1"}, "ce-source": {"terminal-broker"}, "ce-type": {"berth.intake.activity"}, "content-type": {"application/json"}}
	ce.Data = []byte(`{"workspace_id":"` + id2 + `"}`)
	require.NoError(t, nc.PublishMsg(ce))
	require.Eventually(t, func() bool { _, ok, _ := tracker.LastSeen(context.Background(), id2); return ok }, 5*time.Second, 10*time.Millisecond)

	bad := map[string]string{
		`not json`:                   "malformed",
		`{"workspace":"x"}`:          "malformed",
		`{}`:                         "without workspace_id",
		`{"workspace_id":"missing"}`: "no such workspace",
	}
	for body := range bad {
		require.NoError(t, nc.Publish(events.IntakeActivitySubject, []byte(body)))
	}
	stream, err := l.JetStream().Stream(context.Background(), eventlog.DeadLetterStream)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := stream.Info(context.Background())
		return err == nil && info.State.Msgs == uint64(len(bad))
	}, 5*time.Second, 10*time.Millisecond)
	for seq := uint64(1); seq <= uint64(len(bad)); seq++ {
		m, err := stream.GetMsg(context.Background(), seq)
		require.NoError(t, err)
		assert.Equal(t, "berth.deadletter.intake", m.Subject)
		assert.Contains(t, m.Header.Get(eventlog.DeadLetterReasonHeader), bad[string(m.Data)])
		assert.Equal(t, events.IntakeActivitySubject, m.Header.Get("Berth-Original-Subject"))
	}
}
