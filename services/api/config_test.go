package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRunRejectsBadSettings: a misconfigured API refuses to start with an
// error that names the setting, before it opens anything.
func TestRunRejectsBadSettings(t *testing.T) {
	dir := t.TempDir()
	base := []string{"--data-dir", dir, "--projects-root", dir, "--http-addr", "127.0.0.1:0"}
	cases := map[string]struct {
		args []string
		want string
	}{
		"no secret":         {nil, "BERTH_JWT_SECRET"},
		"short secret":      {[]string{"--jwt-secret", "short"}, "at least 32 bytes"},
		"dev tokens + jwks": {[]string{"--dev-tokens", "--jwks-url", "http://127.0.0.1:1/jwks"}, "BERTH_DEV_TOKENS"},
		"default over max":  {[]string{"--jwt-secret", testSecret, "--default-pids", "9000"}, "exceeds its maximum"},
		"disk over max":     {[]string{"--jwt-secret", testSecret, "--default-disk", "30GiB", "--max-disk", "20GiB"}, "exceeds its maximum"},
		"bad size":          {[]string{"--jwt-secret", testSecret, "--max-memory", "lots"}, "size"},
		"routing mode":      {[]string{"--jwt-secret", testSecret, "--routing-mode", "vhost"}, "routing mode"},
		"public url":        {[]string{"--jwt-secret", testSecret, "--public-url", "localhost"}, "public url"},
		"max streams":       {[]string{"--jwt-secret", testSecret, "--max-streams", "0"}, "BERTH_MAX_STREAMS"},
		"trusted proxies":   {[]string{"--jwt-secret", testSecret, "--trusted-proxies", "not-an-address"}, "BERTH_TRUSTED_PROXIES"},
		"cookie domain":     {[]string{"--jwt-secret", testSecret, "--routing-mode", "subdomain", "--cookie-domain", "berth.test"}, "BERTH_COOKIE_DOMAIN"},
		"log level":         {[]string{"--jwt-secret", testSecret, "--log-level", "chatty"}, "log level"},
		"negative rate":     {[]string{"--jwt-secret", testSecret, "--api-rate", "-1"}, "BERTH_API_RATE"},
		"no burst":          {[]string{"--jwt-secret", testSecret, "--api-burst", "0"}, "BERTH_API_BURST"},
		"negative quota":    {[]string{"--jwt-secret", testSecret, "--quota-running", "-1"}, "BERTH_QUOTA_RUNNING"},
		"short session":     {[]string{"--jwt-secret", testSecret, "--session-ttl", "10s"}, "BERTH_SESSION_TTL"},
		"jwks refresh":      {[]string{"--jwt-secret", testSecret, "--jwks-refresh", "1s", "--jwks-min-refresh", "1m"}, "BERTH_JWKS_REFRESH"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := run(context.Background(), append(append([]string{}, base...), c.args...), io.Discard, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want an error naming %q, got %v", c.want, err)
			}
		})
	}
}

// TestRateLimitDefaults: the API limits each caller unless told otherwise.
func TestRateLimitDefaults(t *testing.T) {
	c, err := parse(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Rate != 20 || c.Burst != 40 {
		t.Fatalf("want 20 requests/s in bursts of 40, got %v/s in bursts of %d", c.Rate, c.Burst)
	}
}

// TestJWKSWithoutAudienceWarns: in JWKS mode without an audience, any token
// the identity provider signs for any application would do; the API says so
// at start.
func TestJWKSWithoutAudienceWarns(t *testing.T) {
	e := newEnv(t)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	defer jwks.Close()
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--http-addr", "127.0.0.1:0", "--nats-url", e.natsURL, "--data-dir", e.dataDir,
			"--projects-root", e.projects, "--jwks-url", jwks.URL}, &out, func(string) { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("api exited: %v", err)
	case <-time.After(15 * time.Second):
		cancel()
		t.Fatal("api not ready")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "no token audience configured") {
		t.Fatalf("no warning about the missing audience:\n%s", out.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
