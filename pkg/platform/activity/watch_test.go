package activity_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/platform/activity"
	"github.com/berthdev/berth/pkg/platform/bus"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
)

// TestWatched: the watched bucket answers from memory once loaded (the
// records written before the watch included), follows later writes and
// deletes, and Confirm reads the bucket itself.
func TestWatched(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js, err := jetstream.New(natstest.Conn(t, natstest.Server(t)))
	require.NoError(t, err)
	require.NoError(t, bus.Declare(ctx, js, bus.Options{}))
	quiet := slog.New(slog.DiscardHandler)
	writer, err := activity.Open(ctx, js, time.Second, quiet)
	require.NoError(t, err)
	t0 := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	require.NoError(t, writer.Record(ctx, "before", t0))

	w, err := activity.Watch(ctx, js, quiet)
	require.NoError(t, err)
	at, ok, err := w.LastSeen(ctx, "before")
	require.NoError(t, err)
	assert.True(t, ok && at.Equal(t0), "a record written before the watch: %v %v", at, ok)
	_, ok, err = w.LastSeen(ctx, "never")
	require.NoError(t, err)
	assert.False(t, ok)

	require.NoError(t, writer.Record(ctx, "before", t0.Add(time.Hour)))
	require.Eventually(t, func() bool {
		at, _, _ := w.LastSeen(ctx, "before")
		return at.Equal(t0.Add(time.Hour))
	}, 5*time.Second, 10*time.Millisecond, "a later write reaches the cache")
	at, ok, err = w.Confirm(ctx, "before")
	require.NoError(t, err)
	assert.True(t, ok && at.Equal(t0.Add(time.Hour)))
}
