package adapters_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/enginestatus"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
	"github.com/berthdev/berth/services/api/internal/adapters"
	"github.com/berthdev/berth/services/api/internal/app"
)

func openLog(t *testing.T) *eventlog.Log {
	t.Helper()
	l, err := eventlog.Open(context.Background(), natstest.Conn(t, natstest.Server(t)), eventlog.Options{})
	require.NoError(t, err)
	return l
}

// TestErrorsAreTranslated: what the use cases branch on arrives as app's
// error, with the adapter's message (subject, sequence) kept for the logs.
func TestErrorsAreTranslated(t *testing.T) {
	ctx := context.Background()
	l := openLog(t)
	log := adapters.NewLog(l)

	id := uuid.NewString()
	e, err := events.New(id, &events.Created{Name: "x", Owner: "o", Projects: []string{}}, events.Meta{Source: "t", Actor: "user:t"}, time.Now())
	require.NoError(t, err)
	_, err = log.Append(ctx, e, 0)
	require.NoError(t, err)
	_, err = log.Append(ctx, e, 0)
	assert.ErrorIs(t, err, app.ErrConflict)
	assert.Contains(t, err.Error(), id, "the adapter's context stays in the message")

	_, err = log.ReadDeadLetter(ctx, 1)
	assert.ErrorIs(t, err, app.ErrDeadLetterNotFound, "no stream yet")
	require.NoError(t, l.EnsureDeadLetters(ctx))
	require.NoError(t, l.DeadLetter(ctx, "provisioner", events.WorkspaceSubject(id, events.TypeStartRequested), []byte("x"), "why"))
	_, err = log.ReadDeadLetter(ctx, 2)
	assert.ErrorIs(t, err, app.ErrDeadLetterNotFound, "past the end")
	_, err = log.Redrive(ctx, 2)
	assert.ErrorIs(t, err, app.ErrDeadLetterNotFound)

	board, err := enginestatus.Open(ctx, l.JetStream())
	require.NoError(t, err)
	engine := adapters.NewEngine(board)
	require.NoError(t, engine.Check(ctx), "no reports: starts are accepted")
	require.NoError(t, board.Publish(ctx, "p1", errors.New("docker.sock: permission denied"), time.Now()))
	err = engine.Check(ctx)
	assert.ErrorIs(t, err, app.ErrEngineUnavailable)
	assert.Contains(t, err.Error(), "permission denied")
}

// TestDeadLettersRead: entries come through with every field; a redrive
// request stored in the same stream is not a dead letter; the original
// bytes, not the shortened text, are what a redrive publishes.
func TestDeadLettersRead(t *testing.T) {
	ctx := context.Background()
	l := openLog(t) // declares the dead-letter stream, redrives included
	log := adapters.NewLog(l)

	long := make([]byte, 5000) // not JSON, longer than what is shown
	for i := range long {
		long[i] = 'a'
	}
	subject := events.WorkspaceSubject(uuid.NewString(), events.TypeStartRequested)
	require.NoError(t, l.DeadLetter(ctx, "provisioner", subject, long, "failed 6 times"))

	d, err := log.ReadDeadLetter(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, app.DeadLetter{Sequence: 1, Time: d.Time, Consumer: "provisioner", Reason: "failed 6 times",
		OriginalSubject: subject, Raw: string(long[:4096])}, d)
	assert.False(t, d.Time.IsZero())

	at, err := log.Redrive(ctx, 1)
	require.NoError(t, err)
	assert.EqualValues(t, 2, at)
	m, err := l.JetStream().Stream(ctx, events.DeadLetterStream)
	require.NoError(t, err)
	msg, err := m.GetMsg(ctx, at)
	require.NoError(t, err)
	assert.Equal(t, long, msg.Data)
	assert.Equal(t, "1", msg.Header.Get(events.DeadLetterSequenceHeader))

	_, err = log.ReadDeadLetter(ctx, at)
	assert.ErrorIs(t, err, app.ErrDeadLetterNotFound, "a redrive request is not a dead letter")
	_, err = log.Redrive(ctx, at)
	assert.ErrorIs(t, err, app.ErrDeadLetterNotFound, "nor is it redriven")
}

// TestSeenClaims: a command is claimed once across replicas; while one
// applies it the others hear "pending"; its reply is then what duplicates
// get; a released claim (a transient outcome) can be claimed again; a claim
// whose replica died is taken over after a minute.
func TestSeenClaims(t *testing.T) {
	ctx := context.Background()
	l := openLog(t)
	kv, err := l.JetStream().KeyValue(ctx, events.IntakeBucket)
	require.NoError(t, err)
	clock := time.Now()
	seen := adapters.NewSeen(kv)
	seen = adapters.SeenWithClock(seen, func() time.Time { return clock })

	_, pending, taken, err := seen.Claim(ctx, "k1")
	require.NoError(t, err)
	assert.False(t, taken || pending, "first claim")
	_, pending, taken, err = seen.Claim(ctx, "k1")
	require.NoError(t, err)
	assert.True(t, taken && pending, "a second replica while the first applies")
	const w1 = "11111111-1111-4111-8111-111111111111"
	require.NoError(t, seen.Put(ctx, "k1", app.IntakeReply{Accepted: true, WorkspaceID: w1}))
	prev, pending, taken, err := seen.Claim(ctx, "k1")
	require.NoError(t, err)
	assert.True(t, taken && !pending && prev.Accepted && prev.WorkspaceID == w1, "a duplicate gets the reply")

	_, _, _, err = seen.Claim(ctx, "k2")
	require.NoError(t, err)
	require.NoError(t, seen.Release(ctx, "k2"))
	_, _, taken, err = seen.Claim(ctx, "k2")
	require.NoError(t, err)
	assert.False(t, taken, "released: the retry is applied")

	_, _, _, err = seen.Claim(ctx, "k3") // its replica dies here
	require.NoError(t, err)
	clock = clock.Add(2 * time.Minute)
	_, pending, taken, err = seen.Claim(ctx, "k3")
	require.NoError(t, err)
	assert.False(t, taken || pending, "a stale claim is taken over")
}

// TestSeenRefusesForeignRecords: a record of the intake bucket Berth did
// not write is an error, never replayed to the sender as its reply: a
// workspace that is no id, a code that is no code, a pending record that
// also carries a reply, something that is not JSON. Before, whatever
// decoded was the answer.
func TestSeenRefusesForeignRecords(t *testing.T) {
	ctx := context.Background()
	l := openLog(t)
	kv, err := l.JetStream().KeyValue(ctx, events.IntakeBucket)
	require.NoError(t, err)
	seen := adapters.NewSeen(kv)
	for key, body := range map[string]string{
		"id":      `{"reply":{"accepted":true,"workspace_id":"$KV.berth_names.x"}}`,
		"code":    `{"reply":{"accepted":false,"code":"<script>"}}`,
		"both":    `{"pending_since":"2026-12-07T00:00:00Z","reply":{"accepted":true}}`,
		"nocode":  `{"reply":{"accepted":false,"message":"trust me"}}`,
		"garbage": `not json`,
	} {
		_, err := kv.Put(ctx, key, []byte(body))
		require.NoError(t, err)
		_, _, _, err = seen.Claim(ctx, key)
		assert.Error(t, err, key)
	}
}
