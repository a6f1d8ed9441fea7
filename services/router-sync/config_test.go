package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

func TestRunRejectsBadSettings(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string
	}{
		"backend":      {[]string{"--backend", "dns"}, "BERTH_ROUTE_BACKEND"},
		"routing mode": {[]string{"--routing-mode", "vhost"}, "routing mode"},
		"auth url":     {[]string{"--auth-url", "http://[::1"}, "BERTH_AUTH_URL"},
		"api url":      {[]string{"--api-url", "api:8080"}, "BERTH_ROUTE_API_URL"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := run(context.Background(), c.args, io.Discard, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want an error naming %q, got %v", c.want, err)
			}
		})
	}
}
