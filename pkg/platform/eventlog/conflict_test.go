package eventlog_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/eventlog"
)

// TestConflictAs: a stale append on the real log comes back as the use
// case's own conflict error, and still as the log's.
func TestConflictAs(t *testing.T) {
	ctx := context.Background()
	errMine := errors.New("mine")
	a := openLog(t).ConflictAs(errMine)
	id := uuid.NewString()
	_, err := a.Append(ctx, ev(t, id, &events.Created{Name: "w", Owner: "o"}), 0)
	require.NoError(t, err)
	_, err = a.Append(ctx, ev(t, id, &events.StartRequested{}), 0)
	assert.ErrorIs(t, err, errMine)
	assert.ErrorIs(t, err, eventlog.ErrConflict)
}
