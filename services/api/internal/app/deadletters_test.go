package app_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/services/api/internal/app"
)

// TestRetryOnlyWhatAConsumerTakesBack: only consumers on the redrive
// allow-list get their dead letters back, and only with the subject the
// consumer needs to check them; refusals are 409s saying why, before
// anything is published.
func TestRetryOnlyWhatAConsumerTakesBack(t *testing.T) {
	ctx := context.Background()
	svc, w := newService(t)
	require.NoError(t, w.log.EnsureDeadLetters(ctx))
	admin := app.Caller{Subject: "root", Admin: true}
	cases := []struct {
		consumer, subject, want string
	}{
		{"intake", events.IntakeActivitySubject, "core NATS"},
		{"reaper", events.WorkspaceSubject("w1", events.TypeStopRequested), `consumer "reaper" cannot be retried`},
		{"provisioner", "", "does not say where its message was published"},
	}
	for i, c := range cases {
		require.NoError(t, w.log.DeadLetter(ctx, c.consumer, c.subject, []byte(`{}`), "why"))
		_, err := svc.RetryDeadLetter(ctx, admin, uint64(i+1))
		e, ok := app.AsError(err)
		require.True(t, ok, "%s: %v", c.consumer, err)
		assert.Equal(t, app.KindConflict, e.Kind)
		assert.Equal(t, app.CodeNotRetryable, e.Code)
		assert.Contains(t, e.Message, c.want)
	}
	_, err := svc.RetryDeadLetter(ctx, app.Caller{Subject: "alice"}, 1)
	e, _ := app.AsError(err)
	require.NotNil(t, e)
	assert.Equal(t, app.CodeForbidden, e.Code)
	_, err = svc.DeadLetter(ctx, admin, 99)
	e, _ = app.AsError(err)
	require.NotNil(t, e)
	assert.Equal(t, app.CodeDeadLetterNotFound, e.Code)
}
