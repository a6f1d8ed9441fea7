package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

// Commands that cannot work fail before any request, saying why. (The
// commands themselves run against the real API in tests/e2e.)
func TestRunRejectsBadInvocations(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string
	}{
		"no command":        {[]string{"--token", "t"}, "no command"},
		"no token":          {[]string{"--token", "", "list"}, "no token"},
		"unknown command":   {[]string{"--token", "t", "explode"}, `unknown command "explode"`},
		"missing argument":  {[]string{"--token", "t", "restore"}, "restore takes 1 argument"},
		"bad idle timeout":  {[]string{"--token", "t", "idle-timeout", "w", "soon"}, `idle timeout "soon"`},
		"unreachable API":   {[]string{"--token", "t", "--api", "http://127.0.0.1:1", "list"}, "GET /api/v1/workspaces"},
		"hold without name": {[]string{"--token", "t", "hold"}, "hold takes 1 argument"},
		"get with two":      {[]string{"--token", "t", "get", "a", "b"}, "get takes 1 argument"},

		"deadletter alone":       {[]string{"--token", "t", "deadletter"}, "deadletter needs a subcommand"},
		"deadletter unknown":     {[]string{"--token", "t", "deadletter", "purge"}, `unknown deadletter subcommand "purge"`},
		"deadletter show no seq": {[]string{"--token", "t", "deadletter", "show"}, "deadletter show takes 1 argument"},
		"deadletter bad seq":     {[]string{"--token", "t", "deadletter", "retry", "abc"}, `dead letter "abc": want its sequence`},
		"deadletter seq 0":       {[]string{"--token", "t", "deadletter", "show", "0"}, `dead letter "0"`},
		"deadletter bad limit":   {[]string{"--token", "t", "deadletter", "list", "--limit", "-1"}, "--limit -1"},
		"deadletter bad after":   {[]string{"--token", "t", "deadletter", "list", "--after", "x"}, "invalid value"},
		"deadletter list extra":  {[]string{"--token", "t", "deadletters", "7"}, "deadletters takes no arguments"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := run(context.Background(), c.args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want an error containing %q, got %v", c.want, err)
			}
		})
	}
}

// TestHelpNeedsNoToken: -h prints the usage of berthctl or of a command,
// without a token, and is not an error main reports.
func TestHelpNeedsNoToken(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"audit", "-h"}, {"audit", "export", "-h"}, {"state", "-h"}, {"history", "--help"}} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, &out, &errOut)
		if !errors.Is(err, flag.ErrHelp) || errOut.Len() == 0 {
			t.Errorf("%v: %v, usage %q", args, err, errOut.String())
		}
	}
}
