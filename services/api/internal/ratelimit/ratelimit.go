// Package ratelimit keeps one token bucket per caller, in bounded memory:
// however many distinct callers a client invents, the limiter holds at most
// a fixed number of buckets.
package ratelimit

import (
	"container/list"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxCallers bounds the buckets kept when New is given no bound.
const DefaultMaxCallers = 10_000

// Limiter is a set of token buckets, one per key, safe for concurrent use.
type Limiter struct {
	perSecond rate.Limit
	burst     int
	max       int
	now       func() time.Time
	// refill is how long an empty bucket takes to fill up: a bucket unused
	// for that long is full, so forgetting it loses nothing.
	refill time.Duration

	mu    sync.Mutex
	order *list.List // of *bucket, most recently used first
	byKey map[string]*list.Element
}

type bucket struct {
	key  string
	lim  *rate.Limiter
	used time.Time
}

// New returns a limiter allowing perSecond requests per key on average and
// bursts of up to burst; it keeps at most maxCallers buckets (0: the
// default). now is the clock (nil: time.Now). perSecond and burst must be
// positive.
func New(perSecond float64, burst, maxCallers int, now func() time.Time) *Limiter {
	if maxCallers <= 0 {
		maxCallers = DefaultMaxCallers
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{
		perSecond: rate.Limit(perSecond),
		burst:     burst,
		max:       maxCallers,
		now:       now,
		refill:    seconds(float64(burst) / perSecond),
		order:     list.New(),
		byKey:     map[string]*list.Element{},
	}
}

// Allow spends one token of key's bucket. When the bucket is empty it
// spends nothing and says how long until a token is there.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.forgetIdle(now)
	b := l.bucket(key, now)
	tokens := b.lim.TokensAt(now)
	if tokens >= 1 {
		return b.lim.AllowN(now, 1), 0
	}
	return false, l.untilOneToken(tokens)
}

// Len is the number of buckets held.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byKey)
}

// bucket returns key's bucket, marked as just used, creating it (and
// evicting the least recently used one when over the bound) if needed.
func (l *Limiter) bucket(key string, now time.Time) *bucket {
	if el, ok := l.byKey[key]; ok {
		l.order.MoveToFront(el)
		b := el.Value.(*bucket)
		b.used = now
		return b
	}
	b := &bucket{key: key, lim: rate.NewLimiter(l.perSecond, l.burst), used: now}
	l.byKey[key] = l.order.PushFront(b)
	if len(l.byKey) > l.max {
		l.remove(l.order.Back())
	}
	return b
}

// forgetIdle drops buckets unused for a full refill time, oldest first:
// they are full again, exactly as a new bucket would be.
func (l *Limiter) forgetIdle(now time.Time) {
	for el := l.order.Back(); el != nil; el = l.order.Back() {
		if now.Sub(el.Value.(*bucket).used) < l.refill {
			return
		}
		l.remove(el)
	}
}

func (l *Limiter) remove(el *list.Element) {
	delete(l.byKey, el.Value.(*bucket).key)
	l.order.Remove(el)
}

func (l *Limiter) untilOneToken(tokens float64) time.Duration {
	return seconds((1 - tokens) / float64(l.perSecond))
}

// seconds converts to a Duration, rounding up and saturating (a tiny rate
// makes huge durations, and float-to-int overflow is undefined).
func seconds(s float64) time.Duration {
	ns := math.Ceil(s * float64(time.Second))
	if ns >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(ns)
}
