package main

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthdev/berth/pkg/events"
)

// BenchmarkBacklogDrain: a provisioner starts on a log of 100,000 events
// that need no container work (1,000 workspaces with 99 settings changes
// each) and drains its durable consumer. It used to re-read and fold the
// workspace through a new consumer per message (650 messages in 3 minutes
// before the consumer limit stopped it); the target is >= 500 events/s.
// Run with -benchtime 1x: each iteration writes its own 100,000 events.
func BenchmarkBacklogDrain(b *testing.B) {
	const workspaces, perWorkspace = 1000, 100
	for b.Loop() {
		b.StopTimer()
		w := newWorld(b)
		nc, err := nats.Connect(w.nats.ClientURL())
		if err != nil {
			b.Fatal(err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		hold := true
		for range workspaces {
			id := uuid.NewString()
			for i := range perWorkspace {
				var p events.Payload = &events.LifecycleChanged{Hold: &hold}
				if i == 0 {
					p = &events.Created{Name: "b" + id[:8], Owner: "bench", Image: "img", Projects: []string{}}
				}
				e, err := events.New(id, p, events.Meta{Source: "bench", Actor: "user:bench"}, time.Now())
				if err != nil {
					b.Fatal(err)
				}
				body, _ := json.Marshal(e)
				if _, err := js.PublishAsync(events.WorkspaceSubject(id, e.Type), body, jetstream.WithMsgID(e.ID)); err != nil {
					b.Fatal(err)
				}
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(2 * time.Minute):
			b.Fatal("backlog not written")
		}
		total := workspaces * perWorkspace
		b.StartTimer()
		start := time.Now()
		w.startProvisioner("--reconcile-interval", "1h", "--heartbeat-interval", "0")
		ready := time.Since(start)
		for {
			c, err := js.Consumer(context.Background(), events.Stream, "provisioner")
			if err == nil {
				info, err := c.Info(context.Background())
				if err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= uint64(total) {
					break
				}
			}
			if time.Since(start) > 10*time.Minute {
				b.Fatal("backlog not drained in 10 minutes")
			}
			time.Sleep(50 * time.Millisecond)
		}
		took := time.Since(start)
		b.StopTimer()
		nc.Close()
		b.ReportMetric(float64(total)/took.Seconds(), "events/s")
		b.ReportMetric(ready.Seconds(), "replay-s")
		fmt.Printf("backlog of %d events: replayed in %s, drained in %s (%.0f events/s)\n", total, ready.Round(time.Millisecond), took.Round(time.Millisecond), float64(total)/took.Seconds())
		b.StartTimer()
	}
}
