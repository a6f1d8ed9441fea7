package eventlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
)

func openLog(t testing.TB) *eventlog.Log {
	t.Helper()
	nc := natstest.Conn(t, natstest.Server(t))
	l, err := eventlog.Open(context.Background(), nc, eventlog.Options{})
	require.NoError(t, err)
	return l
}

func ev(t testing.TB, id string, p events.Payload) events.Envelope {
	e, err := events.New(id, p, events.Meta{Source: "test", Actor: "user:alice"}, time.Now())
	require.NoError(t, err)
	return e
}

func TestAppendReadAndConflict(t *testing.T) {
	ctx := context.Background()
	l := openLog(t)
	id := uuid.NewString()

	seq1, err := l.Append(ctx, ev(t, id, &events.Created{Name: "a", Owner: "alice"}), 0)
	require.NoError(t, err)
	// A second "first" event for the same subject conflicts.
	_, err = l.Append(ctx, ev(t, id, &events.Created{Name: "b", Owner: "bob"}), 0)
	require.ErrorIs(t, err, eventlog.ErrConflict)

	start := ev(t, id, &events.StartRequested{})
	seq2, err := l.Append(ctx, start, seq1)
	require.NoError(t, err)
	// Retrying the same event (same Nats-Msg-Id) is de-duplicated, not stored twice.
	dup, err := l.Append(ctx, start, seq1)
	if err == nil {
		assert.Equal(t, seq2, dup, "duplicate append must return the original sequence")
	} else {
		require.ErrorIs(t, err, eventlog.ErrConflict)
	}

	got, err := l.Read(ctx, id)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, events.TypeCreated, got[0].Type)
	assert.Equal(t, seq2, got[1].Sequence)
	ws, err := events.Fold(got)
	require.NoError(t, err)
	assert.Equal(t, events.StatusStarting, ws.Status)

	none, err := l.Read(ctx, uuid.NewString())
	require.NoError(t, err)
	assert.Empty(t, none)

	bad := ev(t, id, &events.StopRequested{})
	bad.Actor = ""
	_, err = l.Append(ctx, bad, seq2)
	require.ErrorIs(t, err, events.ErrInvalidEnvelope)
}

// TestConcurrentWritersOneWins races writers on one workspace, all expecting
// the same last sequence: exactly one append succeeds, the rest conflict.
func TestConcurrentWritersOneWins(t *testing.T) {
	ctx := context.Background()
	l := openLog(t)
	id := uuid.NewString()
	seq, err := l.Append(ctx, ev(t, id, &events.Created{Name: "race", Owner: "alice"}), 0)
	require.NoError(t, err)

	const writers = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	var wins, conflicts int
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.Append(ctx, ev(t, id, &events.StartRequested{}), seq)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, eventlog.ErrConflict):
				conflicts++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 1, wins)
	assert.Equal(t, writers-1, conflicts)
	got, err := l.Read(ctx, id)
	require.NoError(t, err)
	assert.Len(t, got, 2)
}

// TestReplayIsDeterministic replays the same log into two projections and
// requires identical state: replay has no inputs but the log.
func TestReplayIsDeterministic(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := openLog(t)
	for i := range 20 {
		id := uuid.NewString()
		seq, err := l.Append(ctx, ev(t, id, &events.Created{Name: "ws" + string(rune('a'+i)), Owner: "alice"}), 0)
		require.NoError(t, err)
		if i%2 == 0 {
			seq, err = l.Append(ctx, ev(t, id, &events.StartRequested{}), seq)
			require.NoError(t, err)
			_, err = l.Append(ctx, ev(t, id, &events.Running{Host: "h", IP: "10.0.0.1", Port: 8080}), seq)
			require.NoError(t, err)
		}
	}
	catalog := ev(t, events.CatalogSubject, &events.ImageAdded{Ref: "img:1"})
	_, err := l.Append(ctx, catalog, 0)
	require.NoError(t, err)

	replay := func() []byte {
		p := events.NewProjection()
		caughtUp, err := l.Follow(ctx, slog.New(slog.DiscardHandler), func(e events.Envelope) { _, _ = p.Apply(e) })
		require.NoError(t, err)
		select {
		case <-caughtUp:
		case <-time.After(10 * time.Second):
			t.Fatal("replay did not catch up")
		}
		imgs, _ := p.Catalog()
		b, err := json.Marshal(map[string]any{"ws": p.Workspaces(nil), "catalog": imgs, "last": p.LastSequence()})
		require.NoError(t, err)
		return b
	}
	first, second := replay(), replay()
	assert.JSONEq(t, string(first), string(second))
	assert.Contains(t, string(first), `"status":"running"`)
}

func TestFollowSeesNewEvents(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := openLog(t)
	got := make(chan events.Envelope, 4)
	caughtUp, err := l.Follow(ctx, slog.New(slog.DiscardHandler), func(e events.Envelope) { got <- e })
	require.NoError(t, err)
	<-caughtUp // empty log: caught up at once
	id := uuid.NewString()
	_, err = l.Append(ctx, ev(t, id, &events.Created{Name: "late", Owner: "alice"}), 0)
	require.NoError(t, err)
	select {
	case e := <-got:
		assert.Equal(t, id, e.Subject)
		assert.NotZero(t, e.Sequence)
	case <-time.After(5 * time.Second):
		t.Fatal("followed event not delivered")
	}
}
