package eventlog_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/berthdev/berth/pkg/events"
)

// BenchmarkAppendSequential appends a chain of events to one workspace,
// each expecting the previous sequence: the rate of one writer.
func BenchmarkAppendSequential(b *testing.B) {
	l := openLog(b)
	ctx := context.Background()
	id := uuid.NewString()
	seq, err := l.Append(ctx, ev(b, id, &events.Created{Name: "bench", Owner: "b"}), 0)
	if err != nil {
		b.Fatal(err)
	}
	payloads := []events.Payload{&events.StartRequested{}, &events.Running{Host: "h", Port: 8080}, &events.StopRequested{}, &events.Stopped{}}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if seq, err = l.Append(ctx, ev(b, id, payloads[i%len(payloads)]), seq); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendConcurrent appends from parallel writers, each on its own
// workspace (the normal shape: many users, one writer per workspace).
func BenchmarkAppendConcurrent(b *testing.B) {
	l := openLog(b)
	ctx := context.Background()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// The log checks sequences, not lifecycle rules, so the payload
		// shape does not matter for the rate.
		id := uuid.NewString()
		var seq uint64
		for pb.Next() {
			var p events.Payload = &events.StartRequested{}
			if seq == 0 {
				p = &events.Created{Name: "bench", Owner: "b"}
			}
			s, err := l.Append(ctx, ev(b, id, p), seq)
			if err != nil {
				b.Error(err)
				return
			}
			seq = s
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
