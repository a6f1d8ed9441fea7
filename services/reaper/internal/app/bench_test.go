package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/activity"
	"github.com/berthdev/berth/services/reaper/internal/app"
	"github.com/berthdev/berth/services/reaper/internal/policy"
)

// BenchmarkSweepNothingToDo: one sweep over running, recently active
// workspaces (the steady state: none is reaped), 1,000 and 10,000 of
// them, reading activity from the real KV bucket record by record
// ("kv-get", the reaper before 2026-11-24) or from the watched bucket in
// memory ("watched", the reaper now). Reports the time per sweep; the goal
// for 10,000 is < 100 ms without 10,000 KV reads.
func BenchmarkSweepNothingToDo(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, source := range []string{"kv-get", "watched"} {
			b.Run(fmt.Sprintf("%s/%d", source, n), func(b *testing.B) { benchSweep(b, n, source) })
		}
	}
}

func benchSweep(b *testing.B, n int, source string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, tracker := openBus(b)
	proj := events.NewProjection()
	now := time.Now()
	for i := range n {
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
	var act app.Activity = tracker
	if source == "watched" {
		w, err := activity.Watch(ctx, l.JetStream(), slog.New(slog.DiscardHandler))
		require.NoError(b, err)
		act = w
	}
	s := &app.Sweeper{Log: l.ConflictAs(app.ErrConflict), Workspaces: proj, Activity: act, Now: func() time.Time { return now.Add(time.Hour) },
		Policy: policy.Settings{IdleTimeout: 24 * time.Hour, Warning: time.Hour}, Logger: slog.New(slog.DiscardHandler)}
	s.Sweep(ctx) // the watcher has loaded the bucket
	b.ResetTimer()
	for b.Loop() {
		if r := s.Sweep(ctx); r.Checked != n || len(r.Acted) != 0 || r.Failures != 0 {
			b.Fatalf("unexpected sweep %+v", r)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/sweep")
}
