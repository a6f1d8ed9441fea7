package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRateLimitKeys: unauthenticated callers are told apart by their TCP
// address, never by X-Forwarded-For; forwardAuth and the operations routes
// are never limited.
func TestRateLimitKeys(t *testing.T) {
	e := edge(t, func(o *Options) {
		o.DevIssuer = nil
		o.RatePerSecond, o.RateBurst = 0.01, 1 // one request, then 100 s to refill
		o.Now = func() time.Time { return time.Unix(1_700_000_000, 0) }
	})
	call := func(path, from, xff string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.RemoteAddr = from + ":40000"
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	const doc = "/api/v1/openapi.yaml"

	require.Equal(t, http.StatusOK, call(doc, "203.0.113.7", "").Code)
	rec := call(doc, "203.0.113.7", "198.51.100.1")
	require.Equal(t, http.StatusTooManyRequests, rec.Code, "a client cannot pick its own key with X-Forwarded-For")
	assert.Equal(t, "100", rec.Header().Get("Retry-After"))
	assert.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	assert.Contains(t, rec.Body.String(), `"code":"rate_limited"`)

	// Nor from a private address (a workspace behind Traefik could set
	// it): the TCP peer is the key.
	assert.Equal(t, http.StatusOK, call(doc, "10.0.0.2", "198.51.100.1").Code)
	assert.Equal(t, http.StatusTooManyRequests, call(doc, "10.0.0.2", "198.51.100.2").Code)

	// A refused token is limited by address too.
	assert.Equal(t, http.StatusTooManyRequests, call("/api/v1/me", "203.0.113.7", "").Code)

	for _, path := range []string{"/api/v1/auth/forward?workspace=x", "/healthz", "/readyz", "/metrics"} {
		for range 3 {
			assert.NotEqual(t, http.StatusTooManyRequests, call(path, "203.0.113.7", "").Code, path)
		}
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{
		0: 1, time.Nanosecond: 1, 50 * time.Millisecond: 1, time.Second: 1,
		time.Second + time.Nanosecond: 2, 99*time.Second + 1: 100,
	} {
		assert.Equal(t, want, retryAfterSeconds(d), "%v", d)
	}
}
