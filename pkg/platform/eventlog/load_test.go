package eventlog_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
)

var quiet = slog.New(slog.DiscardHandler)

func consumerCount(t testing.TB, l *eventlog.Log) int {
	t.Helper()
	s, err := l.JetStream().Stream(context.Background(), events.Stream)
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	return info.State.Consumers
}

// TestReadLeavesNoConsumers: reads used to open an ordered consumer each,
// which outlived the read by nats.go's 5-minute inactivity threshold; 100
// parallel reads from one user took the stream to its consumer limit.
// Reads are batched direct gets now: every read answers, in order and
// complete across batches, and the consumer count does not move.
func TestReadLeavesNoConsumers(t *testing.T) {
	ctx := context.Background()
	l := openLog(t)
	id := uuid.NewString()
	seq, err := l.Append(ctx, ev(t, id, &events.Created{Name: "many", Owner: "alice"}), 0)
	require.NoError(t, err)
	payloads := []events.Payload{&events.StartRequested{}, &events.Running{Host: "h", Port: 8080}, &events.StopRequested{}, &events.Stopped{}}
	for i := range 599 { // more than two direct-get batches
		seq, err = l.Append(ctx, ev(t, id, payloads[i%len(payloads)]), seq)
		require.NoError(t, err)
	}
	before := consumerCount(t, l)

	var wg sync.WaitGroup
	var bad atomic.Int32
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			evs, err := l.Read(ctx, id)
			if err != nil || len(evs) != 600 || evs[0].Type != events.TypeCreated || evs[599].Sequence != seq {
				bad.Add(1)
				return
			}
			for i := 1; i < len(evs); i++ {
				if evs[i].Sequence <= evs[i-1].Sequence {
					bad.Add(1)
					return
				}
			}
		}()
	}
	wg.Wait()
	assert.Zero(t, bad.Load(), "reads that failed or came back incomplete")
	assert.Equal(t, before, consumerCount(t, l), "reads left consumers behind")

	page, next, err := l.ReadPage(ctx, id, 1, 10)
	require.NoError(t, err)
	require.Len(t, page, 10)
	assert.Equal(t, page[9].Sequence+1, next)
	none, err := l.Read(ctx, uuid.NewString())
	require.NoError(t, err)
	assert.Empty(t, none)
}

// TestConsumeStopsCleanlyWhileDelivering: stopping a consumer while
// messages stream in. The old consumer counted its handler goroutines from
// the delivery callback, which raced with the final Wait (the race detector
// failed `make test` about one run in four).
func TestConsumeStopsCleanlyWhileDelivering(t *testing.T) {
	l := openLog(t)
	for i := range 200 {
		_, err := l.Append(context.Background(), ev(t, uuid.NewString(), &events.Created{Name: fmt.Sprint("w", i), Owner: "o"}), 0)
		require.NoError(t, err)
	}
	for round := range 10 {
		ctx, cancel := context.WithCancel(context.Background())
		var handled atomic.Int32
		done := make(chan error, 1)
		go func() {
			done <- l.Consume(ctx, quiet, eventlog.DurableOptions{Name: fmt.Sprint("stop-", round), Concurrency: 4},
				func(context.Context, events.Envelope, int, bool) error {
					handled.Add(1)
					return nil
				})
		}()
		require.Eventually(t, func() bool { return handled.Load() > int32(round*10) }, 20*time.Second, time.Millisecond, "a liveness bound, generous for a starved CI host")
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("consumer did not stop")
		}
	}
}

// TestConsumeHandsOverAfterCrash: an instance holding a full window dies
// (its connection drops, nothing is acked). Another instance carries out a
// request sent after the crash within seconds, and the dead instance's
// messages too: it used to take the 2-minute ack wait (98 s measured).
func TestConsumeHandsOverAfterCrash(t *testing.T) {
	srv := natstest.Server(t)
	deadConn := natstest.Conn(t, srv)
	dead, err := eventlog.Open(context.Background(), deadConn, eventlog.Options{})
	require.NoError(t, err)
	opts := eventlog.DurableOptions{Name: "provisioner", Concurrency: 2}

	ids := make([]string, 4) // the window: 2 handled + 2 queued
	for i := range ids {
		ids[i] = uuid.NewString()
		_, err := dead.Append(context.Background(), ev(t, ids[i], &events.Created{Name: fmt.Sprint("held", i), Owner: "o"}), 0)
		require.NoError(t, err)
	}
	stuck := make(chan struct{})
	var holding atomic.Int32
	deadCtx, killDead := context.WithCancel(context.Background())
	deadDone := make(chan struct{})
	go func() {
		defer close(deadDone)
		_ = dead.Consume(deadCtx, quiet, opts, func(context.Context, events.Envelope, int, bool) error {
			holding.Add(1)
			<-stuck // hangs until the test ends: a dead process never acks
			return nil
		})
	}()
	t.Cleanup(func() { close(stuck); killDead(); <-deadDone })
	require.Eventually(t, func() bool { return holding.Load() == 2 }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(200 * time.Millisecond) // the rest of the window reaches the dead instance
	deadConn.Close()                   // kill -9: no ack, no nak, no keep-alive

	live, err := eventlog.Open(context.Background(), natstest.Conn(t, srv), eventlog.Options{})
	require.NoError(t, err)
	fresh := uuid.NewString()
	crashed := time.Now()
	handled := make(chan string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	liveDone := make(chan struct{})
	go func() {
		defer close(liveDone)
		_ = live.Consume(ctx, quiet, opts, func(_ context.Context, e events.Envelope, _ int, _ bool) error {
			handled <- e.Subject
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-liveDone })
	_, err = live.Append(context.Background(), ev(t, fresh, &events.Created{Name: "after", Owner: "o"}), 0)
	require.NoError(t, err)

	seen := map[string]bool{}
	for !seen[fresh] || len(seen) < 5 {
		select {
		case id := <-handled:
			seen[id] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("after the crash only %d of 5 requests were carried out", len(seen))
		}
	}
	took := time.Since(crashed)
	assert.Less(t, took, 5*time.Second, "the request after the crash took %s", took)
	t.Logf("all 5 requests carried out %s after the crash", took.Round(time.Millisecond))
}

// TestConsumeKeepsLongWorkAlive: work longer than the ack wait is not
// handed to anyone else while its holder lives (in-progress keep-alive).
func TestConsumeKeepsLongWorkAlive(t *testing.T) {
	l := openLog(t)
	id := uuid.NewString()
	_, err := l.Append(context.Background(), ev(t, id, &events.Created{Name: "slow", Owner: "o"}), 0)
	require.NoError(t, err)
	var deliveries atomic.Int32
	finished := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = l.Consume(ctx, quiet, eventlog.DurableOptions{Name: "slow", AckWait: 600 * time.Millisecond},
			func(context.Context, events.Envelope, int, bool) error {
				if deliveries.Add(1) == 1 {
					time.Sleep(2 * time.Second) // an archive: over three ack waits
					close(finished)
				}
				return nil
			})
	}()
	<-finished
	time.Sleep(700 * time.Millisecond) // a redelivery would show up by now
	cancel()
	<-done
	assert.EqualValues(t, 1, deliveries.Load(), "long work was redelivered while its holder lived")
	c, err := l.JetStream().Consumer(context.Background(), events.Stream, "slow")
	require.NoError(t, err)
	info, err := c.Info(context.Background())
	require.NoError(t, err)
	assert.Zero(t, info.NumAckPending)
	assert.Zero(t, info.NumRedelivered)
}

// TestConsumeCoalescesOneWorkspace: while a slow handler works on one
// workspace, more messages for it wait without taking workers, and one more
// call settles them all. Before, each took a worker blocked on the
// workspace's lock, so two messages of one slow start held both workers and
// nothing else was provisioned.
func TestConsumeCoalescesOneWorkspace(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := openLog(t)
	slow, other := uuid.NewString(), uuid.NewString()
	seq, err := l.Append(ctx, ev(t, slow, &events.Created{Name: "slow", Owner: "o"}), 0)
	require.NoError(t, err)
	release := make(chan struct{})
	var slowCalls atomic.Int32
	handled := make(chan string, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = l.Consume(ctx, quiet, eventlog.DurableOptions{Name: "coalesce", Concurrency: 2},
			func(_ context.Context, e events.Envelope, _ int, _ bool) error {
				if e.Subject == slow && slowCalls.Add(1) == 1 {
					<-release
				}
				handled <- e.Subject
				return nil
			})
	}()
	require.Eventually(t, func() bool { return slowCalls.Load() == 1 }, 5*time.Second, time.Millisecond)
	for range 3 {
		seq, err = l.Append(ctx, ev(t, slow, &events.StartRequested{}), seq)
		require.NoError(t, err)
	}
	time.Sleep(100 * time.Millisecond) // they reach the consumer and wait
	_, err = l.Append(ctx, ev(t, other, &events.Created{Name: "other", Owner: "o"}), 0)
	require.NoError(t, err)
	select {
	case id := <-handled:
		require.Equal(t, other, id, "another workspace is handled while the slow one works")
	case <-time.After(5 * time.Second):
		t.Fatal("a slow workspace's waiting messages blocked the other worker")
	}
	close(release)
	require.Eventually(t, func() bool {
		c, err := l.JetStream().Consumer(ctx, events.Stream, "coalesce")
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	}, 5*time.Second, 10*time.Millisecond, "every message settled")
	assert.EqualValues(t, 2, slowCalls.Load(), "one more call settles the three that waited")
	cancel()
	<-done
}
