package ratelimit

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// step is one request: after advancing the clock by wait, key asks for a
// token; ok and retry are what the limiter must answer.
type step struct {
	wait  time.Duration
	key   string
	ok    bool
	retry time.Duration
}

func TestAllow(t *testing.T) {
	cases := map[string]struct {
		perSecond float64
		burst     int
		steps     []step
	}{
		"burst then refuse": {2, 3, []step{
			{0, "a", true, 0}, {0, "a", true, 0}, {0, "a", true, 0},
			{0, "a", false, 500 * time.Millisecond},
			{0, "a", false, 500 * time.Millisecond}, // a refusal spends nothing
		}},
		"refills at the rate": {2, 2, []step{
			{0, "a", true, 0}, {0, "a", true, 0}, {0, "a", false, 500 * time.Millisecond},
			{200 * time.Millisecond, "a", false, 300 * time.Millisecond},
			{300 * time.Millisecond, "a", true, 0},
			{0, "a", false, 500 * time.Millisecond},
		}},
		"never more than the burst": {10, 2, []step{
			{time.Hour, "a", true, 0}, {0, "a", true, 0}, {0, "a", false, 100 * time.Millisecond},
		}},
		"callers are independent": {1, 1, []step{
			{0, "alice", true, 0}, {0, "alice", false, time.Second},
			{0, "bob", true, 0}, {0, "bob", false, time.Second},
			{time.Second, "alice", true, 0},
		}},
		"retry rounds up": {3, 1, []step{
			{0, "a", true, 0}, {0, "a", false, 333333334 * time.Nanosecond},
		}},
		"slow rate": {0.1, 1, []step{
			{0, "a", true, 0}, {time.Second, "a", false, 9 * time.Second},
		}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
			l := New(c.perSecond, c.burst, 0, clock.now)
			for i, s := range c.steps {
				clock.advance(s.wait)
				ok, retry := l.Allow(s.key)
				assert.Equal(t, s.ok, ok, "step %d (%s)", i, s.key)
				assert.Equal(t, s.retry, retry, "step %d (%s)", i, s.key)
			}
		})
	}
}

// TestIdleCallersAreForgotten: a bucket unused for its refill time is
// full, so dropping it changes no answer.
func TestIdleCallersAreForgotten(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := New(10, 20, 0, clock.now) // refills in 2 s
	for i := range 50 {
		l.Allow(fmt.Sprint("ip:10.0.0.", i))
	}
	require.Equal(t, 50, l.Len())
	clock.advance(time.Second)
	l.Allow("sub:alice")
	assert.Equal(t, 51, l.Len(), "not idle long enough yet")
	clock.advance(time.Second)
	l.Allow("sub:alice")
	assert.Equal(t, 1, l.Len(), "only alice used hers within the refill time")
}

// TestBoundedUnderSpray: a client inventing callers cannot grow the map
// past its bound, and a caller it evicts only gets a full bucket back.
func TestBoundedUnderSpray(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := New(1, 2, 100, clock.now)
	for i := range 10_000 {
		ok, _ := l.Allow(fmt.Sprint("ip:", i))
		require.True(t, ok)
		require.LessOrEqual(t, l.Len(), 100)
	}
	// The most recently used keep their buckets: ip:9999 spent one token
	// in the spray and has one left.
	ok, _ := l.Allow("ip:9999")
	assert.True(t, ok)
	ok, _ = l.Allow("ip:9999")
	assert.False(t, ok, "ip:9999 has spent its burst of 2")
}
