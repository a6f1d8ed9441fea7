package eventlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
)

// TestConsumeRetriesThenDeadLetters: a handler that keeps failing is retried
// with backoff, told on its last attempt, then the message is dead-lettered
// with the reason; a message that does not decode is dead-lettered at once;
// a panicking handler is retried, not fatal.
func TestConsumeRetriesThenDeadLetters(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nc := natstest.Conn(t, natstest.Server(t))
	reader := sdkmetric.NewManualReader()
	l, err := eventlog.Open(ctx, nc, eventlog.Options{Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")})
	require.NoError(t, err)

	failing, panicking, fine := uuid.NewString(), uuid.NewString(), uuid.NewString()
	for _, id := range []string{failing, panicking, fine} {
		_, err := l.Append(ctx, ev(t, id, &events.Created{Name: "x", Owner: "o"}), 0)
		require.NoError(t, err)
	}
	// A foreign writer puts garbage on a workspace subject.
	_, err = l.JetStream().Publish(ctx, events.WorkspaceSubject(uuid.NewString(), events.TypeStartRequested), []byte("not an event"))
	require.NoError(t, err)

	var attempts, lastSeen, panics, handled atomic.Int32
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		_ = l.Consume(ctx, slog.New(slog.DiscardHandler), eventlog.DurableOptions{
			Name: "test", MaxDeliver: 3, RetryInterval: 10 * time.Millisecond,
		}, func(_ context.Context, e events.Envelope, attempt int, last bool) error {
			switch e.Subject {
			case failing:
				attempts.Add(1)
				if last {
					lastSeen.Add(1)
				}
				return errors.New("engine on fire")
			case panicking:
				if panics.Add(1) == 1 {
					panic("boom")
				}
			}
			handled.Add(1)
			return nil
		})
	}()

	var dl jetstream.Stream
	require.Eventually(t, func() bool {
		dl, err = l.JetStream().Stream(ctx, eventlog.DeadLetterStream) // created by Consume
		if err != nil {
			return false
		}
		info, err := dl.Info(ctx)
		return err == nil && info.State.Msgs == 2
	}, 10*time.Second, 20*time.Millisecond)
	assert.EqualValues(t, 3, attempts.Load())
	assert.EqualValues(t, 1, lastSeen.Load(), "the handler is told which attempt is the last")
	assert.EqualValues(t, 2, panics.Load(), "a panic is retried")
	assert.EqualValues(t, 2, handled.Load())

	reasons := map[string]bool{}
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := dl.GetMsg(ctx, seq)
		require.NoError(t, err)
		reasons[m.Header.Get(eventlog.DeadLetterReasonHeader)[:11]] = true
	}
	assert.Equal(t, map[string]bool{"failed 3 ti": true, "undecodable": true}, reasons)

	// Operators see it in the metrics: outcomes and redeliveries per
	// consumer (a dead letter is counted just after it is stored).
	counters := func() map[string]int64 {
		var rm metricdata.ResourceMetrics
		require.NoError(t, reader.Collect(ctx, &rm))
		got := map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				sum, ok := m.Data.(metricdata.Sum[int64])
				if !ok {
					continue
				}
				for _, dp := range sum.DataPoints {
					outcome, _ := dp.Attributes.Value("outcome")
					got[m.Name+"/"+outcome.AsString()] += dp.Value
				}
			}
		}
		return got
	}
	var got map[string]int64
	require.Eventually(t, func() bool {
		got = counters()
		return got["berth.eventlog.consumer.handled/dead_letter"] == 2
	}, 5*time.Second, 10*time.Millisecond, "both dead letters counted")
	assert.EqualValues(t, 2, got["berth.eventlog.consumer.handled/dead_letter"], "%v", got)
	assert.EqualValues(t, 3, got["berth.eventlog.consumer.handled/retry"], "two for the failing workspace, one for the panic: %v", got)
	assert.EqualValues(t, 3, got["berth.eventlog.consumer.redelivered/"], "%v", got)
	assert.EqualValues(t, 1, got["berth.eventlog.consumer.panics/"], "the panic is counted: %v", got)
	lag := func() map[string]int64 {
		var rm metricdata.ResourceMetrics
		require.NoError(t, reader.Collect(ctx, &rm))
		out := map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if g, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == "berth.eventlog.consumer.lag" {
					for _, dp := range g.DataPoints {
						state, _ := dp.Attributes.Value("state")
						out[state.AsString()] = dp.Value
					}
				}
			}
		}
		return out
	}
	require.Eventually(t, func() bool {
		l := lag()
		return len(l) == 2 && l["pending"] == 0 && l["unacked"] == 0
	}, 5*time.Second, 20*time.Millisecond, "everything settled: no lag (%v)", lag())

	// The flow goes on: an event written after the poison is handled.
	after := uuid.NewString()
	_, err = l.Append(ctx, ev(t, after, &events.Created{Name: "after", Owner: "o"}), 0)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return handled.Load() == 3 }, 5*time.Second, 10*time.Millisecond)
}

// TestRedriveHandlesAgain: an admin's retry of a dead letter reaches the
// consumer that gave up on it, which handles the event again (on its
// original subject); a retry whose body does not belong on that subject is
// dead-lettered again, not handled.
func TestRedriveHandlesAgain(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	l := openLog(t)
	id := uuid.NewString()
	_, err := l.Append(ctx, ev(t, id, &events.Created{Name: "redriven", Owner: "o"}), 0)
	require.NoError(t, err)

	var calls, fail atomic.Int32
	fail.Store(1)
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		_ = l.Consume(ctx, quiet, eventlog.DurableOptions{Name: "redrive", MaxDeliver: 1},
			func(_ context.Context, e events.Envelope, _ int, _ bool) error {
				calls.Add(1)
				if e.Subject == id && fail.Load() == 1 {
					return errors.New("engine down")
				}
				return nil
			})
	}()
	var letters []eventlog.DeadLetterEntry
	require.Eventually(t, func() bool {
		letters, _, err = l.ReadDeadLetters(ctx, 0, 10)
		return err == nil && len(letters) == 1
	}, 10*time.Second, 20*time.Millisecond)
	fail.Store(0) // the engine is back
	before := calls.Load()
	_, err = l.Redrive(ctx, letters[0].Sequence)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return calls.Load() == before+1 }, 10*time.Second, 10*time.Millisecond)

	// A forged retry: another workspace's event under this subject.
	forged := nats.NewMsg(events.RedriveSubjectPrefix + "redrive")
	forged.Data, _ = json.Marshal(ev(t, uuid.NewString(), &events.StartRequested{}))
	forged.Header.Set(events.OriginalSubjectHeader, events.WorkspaceSubject(id, events.TypeStartRequested))
	_, err = l.JetStream().PublishMsg(ctx, forged)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		letters, _, err = l.ReadDeadLetters(ctx, 0, 10)
		return err == nil && len(letters) == 2
	}, 10*time.Second, 20*time.Millisecond)
	assert.Contains(t, letters[1].Reason, "undecodable")
	assert.Equal(t, before+1, calls.Load(), "the forged retry was not handled")
}

// TestShutdownDuringRetryIsNotDeadLettered: a consumer stopped while a
// failed message waits out its backoff hands the message back to the
// server (another replica or the next start handles it), never to the dead
// letters; the retries wait 1x, 2x, 4x the first interval, not more.
func TestShutdownDuringRetryIsNotDeadLettered(t *testing.T) {
	l := openLog(t)
	id := uuid.NewString()
	_, err := l.Append(context.Background(), ev(t, id, &events.Created{Name: "flaky", Owner: "o"}), 0)
	require.NoError(t, err)

	var (
		mu    sync.Mutex
		tries []time.Time
	)
	failing := func(context.Context, events.Envelope, int, bool) error {
		mu.Lock()
		defer mu.Unlock()
		tries = append(tries, time.Now())
		return errors.New("engine down")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- l.Consume(ctx, quiet, eventlog.DurableOptions{Name: "flaky", MaxDeliver: 6, RetryInterval: 200 * time.Millisecond}, failing)
	}()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(tries) == 4 }, 10*time.Second, 10*time.Millisecond)
	cancel() // during the fourth wait (1.6 s)
	require.NoError(t, <-done)
	mu.Lock()
	gaps := []time.Duration{tries[1].Sub(tries[0]), tries[2].Sub(tries[1]), tries[3].Sub(tries[2])}
	mu.Unlock()
	assert.GreaterOrEqual(t, gaps[0], 200*time.Millisecond)
	assert.Less(t, gaps[2], 1500*time.Millisecond, "waits double (200, 400, 800 ms), they do not quadruple: %v", gaps)

	letters, _, err := l.ReadDeadLetters(context.Background(), 0, 10)
	require.NoError(t, err)
	assert.Empty(t, letters, "a shutdown is not a failure")

	handled := make(chan string, 1)
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	t.Cleanup(func() { cancel2(); <-done2 })
	go func() {
		defer close(done2)
		_ = l.Consume(ctx2, quiet, eventlog.DurableOptions{Name: "flaky"}, func(_ context.Context, e events.Envelope, _ int, _ bool) error {
			handled <- e.Subject
			return nil
		})
	}()
	select {
	case got := <-handled:
		assert.Equal(t, id, got, "the next start handles it")
	case <-time.After(10 * time.Second):
		t.Fatal("the message was lost")
	}
}

// TestConsumeEndsWhenItsConsumerIsDeleted: with the durable deleted on the
// server (by an operator, or a recreated stream), Consume says so instead
// of pulling from nothing forever; its supervisor starts it again.
func TestConsumeEndsWhenItsConsumerIsDeleted(t *testing.T) {
	l := openLog(t)
	_, err := l.Append(context.Background(), ev(t, uuid.NewString(), &events.Created{Name: "one", Owner: "o"}), 0)
	require.NoError(t, err)
	handled := make(chan struct{}, 1)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		done <- l.Consume(ctx, quiet, eventlog.DurableOptions{Name: "doomed", Concurrency: 1}, func(context.Context, events.Envelope, int, bool) error {
			handled <- struct{}{}
			return nil
		})
	}()
	<-handled
	require.NoError(t, l.JetStream().DeleteConsumer(context.Background(), events.Stream, "doomed"))
	select {
	case err := <-done:
		assert.ErrorIs(t, err, eventlog.ErrConsumerClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("Consume kept running without its consumer")
	}
}

// TestDeadLetterKeepsHeaders: a dead letter keeps the original message's
// headers (a binary-mode CloudEvent's attributes) beside the reason.
func TestDeadLetterKeepsHeaders(t *testing.T) {
	ctx := context.Background()
	l := openLog(t)
	require.NoError(t, l.DeadLetterMsg(ctx, "intake", "berth.intake.sys.lms.workspace",
		nats.Header{"ce-id": {"cmd-9"}, "ce-type": {"berth.intake.workspace.stop"}, "Nats-Expected-Stream": {"ELSEWHERE"}, "Nats-Msg-Id": {"x"}},
		[]byte(`{"workspace":"x"}`), "workspace_not_found: no workspace"),
		"a sender's Nats-* headers do not steer its dead letter")
	dl, err := l.JetStream().Stream(ctx, eventlog.DeadLetterStream)
	require.NoError(t, err)
	m, err := dl.GetMsg(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, "cmd-9", m.Header.Get("ce-id"))
	assert.Equal(t, "berth.intake.workspace.stop", m.Header.Get("ce-type"))
	assert.Equal(t, "workspace_not_found: no workspace", m.Header.Get(eventlog.DeadLetterReasonHeader))
	assert.Equal(t, "berth.intake.sys.lms.workspace", m.Header.Get(eventlog.OriginalSubjectHeader))
}
