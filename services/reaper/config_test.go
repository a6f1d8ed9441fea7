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
		"interval":         {[]string{"--sweep-interval", "0s"}, "BERTH_SWEEP_INTERVAL"},
		"negative":         {[]string{"--retention", "-1h"}, "BERTH_RETENTION"},
		"bounds inverted":  {[]string{"--idle-timeout-min", "48h", "--idle-timeout-max", "1h"}, "BERTH_IDLE_TIMEOUT_MIN"},
		"default too long": {[]string{"--idle-timeout", "1000h"}, "BERTH_IDLE_TIMEOUT"},
		"not a duration":   {[]string{"--idle-warning", "soon"}, "idle-warning"},
		"unknown flag":     {[]string{"--idle"}, "idle"},
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
