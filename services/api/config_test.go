package main

import (
	"context"
	"io"
	"strings"
	"testing"
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
		"bad size":          {[]string{"--jwt-secret", testSecret, "--max-memory", "lots"}, "size"},
		"routing mode":      {[]string{"--jwt-secret", testSecret, "--routing-mode", "vhost"}, "routing mode"},
		"public url":        {[]string{"--jwt-secret", testSecret, "--public-url", "localhost"}, "public url"},
		"log level":         {[]string{"--jwt-secret", testSecret, "--log-level", "chatty"}, "log level"},
		"negative rate":     {[]string{"--jwt-secret", testSecret, "--api-rate", "-1"}, "BERTH_API_RATE"},
		"no burst":          {[]string{"--jwt-secret", testSecret, "--api-burst", "0"}, "BERTH_API_BURST"},
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
