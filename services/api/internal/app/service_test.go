package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
	"github.com/berthdev/berth/services/api/internal/adapters"
	"github.com/berthdev/berth/services/api/internal/app"
	"github.com/berthdev/berth/services/api/internal/names"
)

type world struct {
	log   *eventlog.Log
	proj  *events.Projection
	names *names.Registry
	now   time.Time
}

func newService(t *testing.T) (*app.Service, *world) {
	t.Helper()
	ctx := context.Background()
	nc := natstest.Conn(t, natstest.Server(t))
	l, err := eventlog.Open(ctx, nc, eventlog.Options{})
	require.NoError(t, err)
	reg, err := names.Open(ctx, l.JetStream())
	require.NoError(t, err)
	w := &world{log: l, proj: events.NewProjection(), names: reg, now: time.Now()}
	svc := app.New(adapters.NewLog(l), w.proj, reg, app.Options{
		ProjectsRoot: t.TempDir(), DefaultImage: "img:1", ClaimGrace: time.Minute,
		Now:    func() time.Time { return w.now },
		Bounds: app.Bounds{Default: events.Resources{MemoryBytes: 1 << 30, MilliCPUs: 500, Pids: 100}, Max: events.Resources{MemoryBytes: 2 << 30, MilliCPUs: 1000, Pids: 200}},
	})
	admin := app.Caller{Subject: "root", Admin: true}
	_, err = svc.AddImage(ctx, admin, app.ImageInput{Ref: "img:1"})
	require.NoError(t, err)
	return svc, w
}

// observe appends an event as another service (the provisioner) would.
func (w *world) observe(t *testing.T, ws events.Workspace, p events.Payload) events.Workspace {
	t.Helper()
	e, err := events.New(ws.ID, p, events.Meta{Source: "berth/provisioner", Actor: "service:provisioner"}, w.now)
	require.NoError(t, err)
	e.Sequence, err = w.log.Append(context.Background(), e, ws.Version)
	require.NoError(t, err)
	_, err = w.proj.Apply(e)
	require.NoError(t, err)
	next, err := events.Apply(ws, e)
	require.NoError(t, err)
	return next
}

func TestDeletedNameIsReusable(t *testing.T) {
	ctx := context.Background()
	svc, w := newService(t)
	admin := app.Caller{Subject: "root", Admin: true}
	ws, err := svc.Create(ctx, admin, app.CreateInput{Name: "reuse"})
	require.NoError(t, err)

	_, err = svc.Create(ctx, admin, app.CreateInput{Name: "reuse"})
	e, _ := app.AsError(err)
	require.NotNil(t, e)
	assert.Equal(t, app.CodeNameTaken, e.Code)

	ws, err = svc.Delete(ctx, admin, ws.ID, app.DeleteKeep)
	require.NoError(t, err)
	w.observe(t, ws, &events.Deleted{})

	again, err := svc.Create(ctx, admin, app.CreateInput{Name: "reuse"})
	require.NoError(t, err)
	assert.NotEqual(t, ws.ID, again.ID)
}

// TestAbandonedClaimExpires: a writer that claimed a name and died before
// appending must not block the name forever.
func TestAbandonedClaimExpires(t *testing.T) {
	ctx := context.Background()
	svc, w := newService(t)
	admin := app.Caller{Subject: "root", Admin: true}
	never := func(string, time.Time) bool { return false }
	require.NoError(t, w.names.Claim(ctx, "orphan", "11111111-1111-1111-1111-111111111111", never))

	_, err := svc.Create(ctx, admin, app.CreateInput{Name: "orphan"})
	e, _ := app.AsError(err)
	require.NotNil(t, e, "a fresh claim is honoured")
	assert.Equal(t, app.CodeNameTaken, e.Code)

	w.now = w.now.Add(2 * time.Minute)
	_, err = svc.Create(ctx, admin, app.CreateInput{Name: "orphan"})
	require.NoError(t, err)
}

// TestMalformedClaimIsTakenOver: a name claim whose holder is no workspace
// id (a forged intake reply once wrote JSON there) does not block the name:
// the user's Launch takes it over at once.
func TestMalformedClaimIsTakenOver(t *testing.T) {
	ctx := context.Background()
	svc, w := newService(t)
	never := func(string, time.Time) bool { return false }
	for user, holder := range map[string]string{"carol": `{"accepted":false,"code":"not_json"}`, "dave": "not-an-id", "erin": "11111111-1111-1111-1111-11111111111X"} {
		require.NoError(t, w.names.Claim(ctx, user, holder, never))
		ws, _, err := svc.Launch(ctx, app.Caller{Subject: user}, app.LaunchInput{})
		require.NoError(t, err, "holder %q", holder)
		assert.Equal(t, user, ws.Name, "the home name, not a fallback")
	}
}

// TestStaleProjectionIsJudgedOnTheLog: a command the projection would call
// illegal is re-checked against the log before it is refused.
func TestStaleProjectionIsJudgedOnTheLog(t *testing.T) {
	ctx := context.Background()
	svc, w := newService(t)
	alice := app.Caller{Subject: "alice"}
	ws, _, err := svc.Launch(ctx, alice, app.LaunchInput{})
	require.NoError(t, err)
	// The provisioner reports failure directly to the log; this API's
	// projection has not seen it (no follower in this test).
	e, err := events.New(ws.ID, &events.Failed{Code: "x", Message: "boom", Retryable: true}, events.Meta{Source: "p", Actor: "service:p"}, w.now)
	require.NoError(t, err)
	_, err = w.log.Append(ctx, e, ws.Version)
	require.NoError(t, err)

	// Archive needs stopped/error: the projection says starting, the log says error.
	ws, err = svc.Start(ctx, alice, ws.ID) // retry from error: allowed by the log
	require.NoError(t, err)
	assert.Equal(t, events.StatusStarting, ws.Status)
	evs, err := w.log.Read(ctx, ws.ID)
	require.NoError(t, err)
	assert.Len(t, evs, 4)
}

func TestLabelFor(t *testing.T) {
	cases := map[string]string{
		"alice":                 "alice",
		"Alice.Smith@Example.o": "alice-smith-example-o",
		"--x--":                 "x",
		"":                      "workspace",
		"ü":                     "workspace",
		"a_b c":                 "a-b-c",
	}
	for in, want := range cases {
		assert.Equal(t, want, app.LabelFor(in), in)
	}
	long := app.LabelFor(string(make([]byte, 0)) + "abcdefghij" + "abcdefghij" + "abcdefghij" + "abcdefghij" + "abcdefghij" + "abcdefghij" + "abcdefghij")
	assert.LessOrEqual(t, len(long), 63)
}
