package eventlog_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
)

func publishRaw(t *testing.T, js jetstream.JetStream, subject string, e events.Envelope) {
	t.Helper()
	body, err := json.Marshal(e)
	require.NoError(t, err)
	_, err = js.Publish(context.Background(), subject, body, jetstream.WithMsgID(e.ID))
	require.NoError(t, err)
}

// TestEventsBoundToTheirSubject: bus rights are granted per subject, so a
// body must not smuggle in what its subject does not allow. An identity
// that may record "running" for workspace A writes, on A's running
// subject, a catalog image, an update of A and a start of workspace B.
// Before, the fold applied all three (it trusted the body's subject and
// type); now none is applied, reads leave them out, the consumer
// dead-letters them, and A's next append does not conflict.
func TestEventsBoundToTheirSubject(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := openLog(t)
	a, b := uuid.NewString(), uuid.NewString()
	for _, id := range []string{a, b} {
		_, err := l.Append(ctx, ev(t, id, &events.Created{Name: "w" + id[:6], Owner: "alice", Image: "good:1", Projects: []string{}}), 0)
		require.NoError(t, err)
	}
	evil := "evil:1"
	running := events.WorkspaceSubject(a, events.TypeRunning)
	publishRaw(t, l.JetStream(), running, ev(t, events.CatalogSubject, &events.ImageAdded{Ref: evil, CapAdd: []string{"SYS_ADMIN"}}))
	publishRaw(t, l.JetStream(), running, ev(t, a, &events.Updated{Image: &evil}))
	publishRaw(t, l.JetStream(), running, ev(t, b, &events.StartRequested{}))

	proj := events.NewProjection()
	require.NoError(t, l.Replay(ctx, slog.New(slog.DiscardHandler), proj))
	catalog, _ := proj.Catalog()
	assert.Empty(t, catalog, "a catalog image was smuggled in on a workspace subject")
	wa, _ := proj.Workspace(a)
	wb, _ := proj.Workspace(b)
	assert.Equal(t, "good:1", wa.Image, "an update was smuggled in as an observation")
	assert.Equal(t, events.StatusCreated, wb.Status, "workspace b was changed through a's subject")
	assert.Len(t, proj.Anomalies(), 3)

	got, last, err := l.ReadAll(ctx, a)
	require.NoError(t, err)
	assert.Len(t, got, 1, "reads return only the events that belong to the subject")
	assert.Equal(t, wa.Version, last, "a writer that reloads must expect the messages left out")
	_, err = l.Append(ctx, ev(t, a, &events.StartRequested{}), wa.Version)
	require.NoError(t, err, "the workspace is not wedged by what was passed over")

	var handled, deadLettered atomic.Int32
	cctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = l.Consume(cctx, slog.New(slog.DiscardHandler), eventlog.DurableOptions{Name: "bound"},
			func(context.Context, events.Envelope, int, bool) error { handled.Add(1); return nil })
	}()
	require.Eventually(t, func() bool {
		if dl, err := l.JetStream().Stream(ctx, eventlog.DeadLetterStream); err == nil {
			if info, err := dl.Info(ctx); err == nil {
				deadLettered.Store(int32(info.State.Msgs))
			}
		}
		return deadLettered.Load() == 3 && handled.Load() == 3
	}, 10*time.Second, 20*time.Millisecond, "dead-lettered %d, handled %d", deadLettered.Load(), handled.Load())
	stop()
	<-done
}

// TestLegacySubjects: a log written before the event kind was part of the
// subject (berth.ws.<id>) is still read, folded, paged and appended to.
func TestLegacySubjects(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc := natstest.Conn(t, natstest.Server(t))
	old, err := eventlog.Open(ctx, nc, eventlog.Options{})
	require.NoError(t, err)
	id, other := uuid.NewString(), uuid.NewString()
	publishRaw(t, old.JetStream(), events.LegacyWorkspaceSubject(id), ev(t, id, &events.Created{Name: "old", Owner: "alice", Projects: []string{}}))
	publishRaw(t, old.JetStream(), events.LegacyWorkspaceSubject(other), ev(t, other, &events.Created{Name: "other", Owner: "bob", Projects: []string{}}))
	publishRaw(t, old.JetStream(), events.LegacyWorkspaceSubject(id), ev(t, id, &events.StartRequested{}))

	l, err := eventlog.Open(ctx, nc, eventlog.Options{}) // an upgraded service opens the old log
	require.NoError(t, err)
	proj := events.NewProjection()
	require.NoError(t, l.Replay(ctx, slog.New(slog.DiscardHandler), proj))
	ws, ok := proj.Workspace(id)
	require.True(t, ok)
	require.Equal(t, uint64(3), ws.Version)
	require.Equal(t, events.StatusStarting, ws.Status)

	_, err = l.Append(ctx, ev(t, id, &events.StopRequested{}), 1)
	require.ErrorIs(t, err, eventlog.ErrConflict, "a stale version must conflict")
	seq, err := l.Append(ctx, ev(t, id, &events.StopRequested{}), ws.Version)
	require.NoError(t, err)
	_, err = l.Append(ctx, ev(t, id, &events.StartRequested{}), ws.Version)
	require.ErrorIs(t, err, eventlog.ErrConflict, "the old version must conflict after a new-form append")
	_, err = l.Append(ctx, ev(t, id, &events.StartRequested{}), seq)
	require.NoError(t, err)

	all, err := l.Read(ctx, id)
	require.NoError(t, err)
	var types []events.Type
	for _, e := range all {
		types = append(types, e.Type)
	}
	assert.Equal(t, []events.Type{events.TypeCreated, events.TypeStartRequested, events.TypeStopRequested, events.TypeStartRequested}, types)
	// Paging one at a time crosses from the old subject to the new ones.
	var paged []uint64
	for from := uint64(0); ; {
		page, next, err := l.ReadPage(ctx, id, from, 1)
		require.NoError(t, err)
		for _, e := range page {
			paged = append(paged, e.Sequence)
		}
		if next == 0 {
			break
		}
		from = next
	}
	assert.Equal(t, []uint64{1, 3, all[2].Sequence, all[3].Sequence}, paged)
}
