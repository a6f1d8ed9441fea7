package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
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
		"no command":        {[]string{"--token", "t"}, `expected one of "list"`},
		"no token":          {[]string{"--token", "", "list"}, "no token"},
		"unknown command":   {[]string{"--token", "t", "explode"}, "unexpected argument explode"},
		"missing argument":  {[]string{"--token", "t", "restore"}, `expected "<workspace>"`},
		"bad idle timeout":  {[]string{"--token", "t", "idle-timeout", "w", "soon"}, `idle timeout "soon"`},
		"unreachable API":   {[]string{"--token", "t", "--api", "http://127.0.0.1:1", "list"}, "GET /api/v1/workspaces"},
		"hold without name": {[]string{"--token", "t", "hold"}, `expected "<workspace>"`},
		"get with two":      {[]string{"--token", "t", "get", "a", "b"}, "unexpected argument b"},
		"bad output":        {[]string{"--token", "t", "history", "w", "-o", "xml"}, `must be one of "text","json"`},
		"state without at":  {[]string{"--token", "t", "state", "w"}, "missing flags: --at"},
		"state bad at":      {[]string{"--token", "t", "state", "w", "--at", "2pm"}, `--at "2pm": want an RFC 3339 time`},
		"logs tail":         {[]string{"--token", "t", "logs", "w", "-n", "0"}, "--tail 0: want 1 to 5000"},
		"replay no verify":  {[]string{"--token", "t", "replay"}, "missing flags: --verify"},
		"bad shell":         {[]string{"completion", "tcsh"}, `must be one of "bash","zsh","fish"`},
		"register no types": {[]string{"--token", "t", "system", "register", "lms", "--owners", "*"}, "missing flags: --types"},

		"deadletter unknown":     {[]string{"--token", "t", "deadletter", "purge"}, "unexpected argument purge"},
		"deadletter show no seq": {[]string{"--token", "t", "deadletter", "show"}, `expected "<seq>"`},
		"deadletter bad seq":     {[]string{"--token", "t", "deadletter", "retry", "abc"}, `dead letter "abc": want its sequence`},
		"deadletter seq 0":       {[]string{"--token", "t", "deadletter", "show", "0"}, `dead letter "0"`},
		"deadletter bad limit":   {[]string{"--token", "t", "deadletter", "list", "--limit=-1"}, "--limit -1"},
		"deadletter bad after":   {[]string{"--token", "t", "deadletter", "list", "--after", "x"}, `--after: expected a valid 64 bit uint but got "x"`},
		"deadletter list extra":  {[]string{"--token", "t", "deadletters", "7"}, "unexpected argument 7"},
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
		if !errors.Is(err, errHelp) || !strings.Contains(out.String(), "Usage: berthctl") {
			t.Errorf("%v: %v, usage %q", args, err, out.String())
		}
	}
}

// TestCompletion: with COMP_LINE set (the shell's question), berthctl
// answers with the commands, subcommands and flags that fit, and with the
// names of the workspaces the API lists; `completion bash` prints the
// script that wires it up.
func TestCompletion(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"workspaces":[{"id":"w1","name":"alice"},{"id":"w2","name":"albert"},{"id":"w3","name":"bob"}]}`))
	}))
	defer srv.Close()
	t.Setenv("BERTH_API_URL", srv.URL)
	t.Setenv("BERTH_TOKEN", "t")
	for line, want := range map[string]string{
		"berthctl aud":           "audit",
		"berthctl audit ex":      "export",
		"berthctl delete x --da": "--data",
		"berthctl start al":      "albert alice",
		"berthctl logs b":        "bob",
	} {
		t.Setenv("COMP_LINE", line)
		var out bytes.Buffer
		if err := run(context.Background(), nil, &out, io.Discard); !errors.Is(err, errHelp) {
			t.Fatalf("%q: %v", line, err)
		}
		got := strings.Fields(out.String())
		slices.Sort(got)
		if strings.Join(got, " ") != want {
			t.Errorf("%q completes to %q, want %q", line, got, want)
		}
	}
	t.Setenv("COMP_LINE", "")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"completion", "bash"}, &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "complete -C ") {
		t.Fatalf("completion bash: %v %q", err, out.String())
	}
}

// TestImageCommands: the catalog is managed without curl; a profile is
// sent as the API takes it, and a bad one is refused before any request.
func TestImageCommands(t *testing.T) {
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		asked = append(asked, r.Method+" "+r.URL.EscapedPath()+" "+string(b))
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	for _, args := range [][]string{
		{"image", "add", "berth/workspace-debian:latest", "--description", "Debian", "--profile", `{"port":8080,"activity":"traffic"}`},
		{"image", "add", "berth/workspace-desktop:latest", "--launchable"},
		{"image", "set", "berth/workspace-desktop:latest", "--launchable=false", "--default"},
		{"launch", "--image", "berth/workspace-desktop:latest"},
		{"image", "remove", "berth/workspace-debian:latest"},
		{"image"},
	} {
		if err := run(context.Background(), append([]string{"--token", "t", "--api", srv.URL}, args...), io.Discard, io.Discard); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	want := []string{
		`POST /api/v1/images {"cap_add":null,"description":"Debian","profile":{"activity":"traffic","port":8080},"ref":"berth/workspace-debian:latest"}`,
		`POST /api/v1/images {"cap_add":null,"description":"","launchable":true,"ref":"berth/workspace-desktop:latest"}`,
		`PATCH /api/v1/images/berth%2Fworkspace-desktop:latest {"default":true,"launchable":false}`,
		`POST /api/v1/workspaces/launch {"image":"berth/workspace-desktop:latest"}`,
		"DELETE /api/v1/images/berth%2Fworkspace-debian:latest ",
		"GET /api/v1/images ",
	}
	if strings.Join(asked, "\n") != strings.Join(want, "\n") {
		t.Fatalf("asked\n%s\nwant\n%s", strings.Join(asked, "\n"), strings.Join(want, "\n"))
	}
	if err := run(context.Background(), []string{"--token", "t", "--api", srv.URL, "image", "add", "x:1", "--profile", "port=1"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "not a JSON object") {
		t.Fatalf("a bad profile: %v", err)
	}
}
