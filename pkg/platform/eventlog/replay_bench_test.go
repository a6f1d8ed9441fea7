package eventlog_test

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/eventlog"
)

// replayEvents is how many events BenchmarkReplay folds: 200,000 by
// default, BERTH_BENCH_REPLAY_EVENTS to change (1000000 for the issue's
// figure).
func replayEvents(b *testing.B) int {
	if v := os.Getenv("BERTH_BENCH_REPLAY_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("BERTH_BENCH_REPLAY_EVENTS=%q", v)
		}
		return n
	}
	return 200_000
}

// fillLog appends n events spread over n/50 workspaces (a workspace's life
// is a few dozen events), concurrently.
func fillLog(b *testing.B, l *eventlog.Log, n int) {
	ctx := context.Background()
	per := 50
	payloads := []events.Payload{&events.StartRequested{}, &events.Running{Host: "h", IP: "10.0.0.1", Port: 8080}, &events.StopRequested{}, &events.Stopped{}}
	work := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range work {
				id := uuid.NewString()
				seq, err := l.Append(ctx, ev(b, id, &events.Created{Name: "w" + strconv.Itoa(w), Owner: "o" + strconv.Itoa(w%100), Image: "img", Projects: []string{"p"}}), 0)
				if err != nil {
					b.Error(err)
					return
				}
				for i := 1; i < per; i++ {
					if seq, err = l.Append(ctx, ev(b, id, payloads[(i-1)%len(payloads)]), seq); err != nil {
						b.Error(err)
						return
					}
				}
			}
		}()
	}
	for w := range n / per {
		work <- w
	}
	close(work)
	wg.Wait()
}

// BenchmarkReplay: folding the whole log into a projection (what every
// service does at start), against a raw ordered-consumer read of the same
// stream that only counts messages. The goal is a fold at >= 0.5x the raw
// rate (issue 14); ratio reports fold/raw.
func BenchmarkReplay(b *testing.B) {
	l := openLog(b)
	n := replayEvents(b)
	fillLog(b, l, n)
	ctx := context.Background()
	var raw, fold time.Duration
	for b.Loop() {
		start := time.Now()
		readRaw(b, l, n)
		raw += time.Since(start)
		start = time.Now()
		proj := events.NewProjection()
		rctx, stop := context.WithCancel(ctx)
		if err := l.Replay(rctx, slog.New(slog.DiscardHandler), proj); err != nil {
			b.Fatal(err)
		}
		fold += time.Since(start)
		stop() // the follower keeps following until then
		if got := len(proj.Workspaces(nil)); got != n/50 {
			b.Fatalf("%d workspaces folded, want %d", got, n/50)
		}
	}
	rawRate := float64(n*b.N) / raw.Seconds()
	foldRate := float64(n*b.N) / fold.Seconds()
	b.ReportMetric(rawRate, "raw-events/s")
	b.ReportMetric(foldRate, "fold-events/s")
	b.ReportMetric(foldRate/rawRate, "fold/raw")
	b.ReportMetric(fold.Seconds()/float64(b.N), "fold-s")
}

// readRaw reads every message of the stream with an ordered consumer,
// decoding nothing.
func readRaw(b *testing.B, l *eventlog.Log, n int) {
	ctx := context.Background()
	cons, err := l.JetStream().OrderedConsumer(ctx, events.Stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	count := 0
	cc, err := cons.Consume(func(jetstream.Msg) {
		if count++; count == n {
			close(done)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	<-done
	cc.Stop()
}
