package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/services/reaper/internal/app"
	"github.com/berthdev/berth/services/reaper/internal/policy"
)

// BenchmarkSweepNothingToDo: one sweep over 1,000 running, recently active
// workspaces (the steady state: every one needs an activity lookup in the
// real KV bucket, none is reaped). Reports the time per sweep.
func BenchmarkSweepNothingToDo(b *testing.B) {
	ctx := context.Background()
	l, tracker := openBus(b)
	proj := events.NewProjection()
	now := time.Now()
	for i := range 1000 {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		for seq, p := range []events.Payload{&events.Created{Name: fmt.Sprintf("w%d", i), Owner: "o"}, &events.StartRequested{}, &events.Running{IP: "10.0.0.2", Port: 8080}} {
			e, err := events.New(id, p, events.Meta{Source: "bench", Actor: "user:o"}, now)
			require.NoError(b, err)
			e.Sequence = uint64(i*3 + seq + 1)
			_, err = proj.Apply(e)
			require.NoError(b, err)
		}
		require.NoError(b, tracker.Record(ctx, id, now))
	}
	s := &app.Sweeper{Log: l.ConflictAs(app.ErrConflict), Workspaces: proj, Activity: tracker, Now: func() time.Time { return now.Add(time.Hour) },
		Policy: policy.Settings{IdleTimeout: 24 * time.Hour, Warning: time.Hour}, Logger: slog.New(slog.DiscardHandler)}
	b.ResetTimer()
	for b.Loop() {
		if r := s.Sweep(ctx); r.Checked != 1000 || len(r.Acted) != 0 || r.Failures != 0 {
			b.Fatalf("unexpected sweep %+v", r)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/sweep")
}
