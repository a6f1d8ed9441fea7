package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// fakeDeadLetters serves five dead letters the way the API does (pages
// of at most limit after after), one retry, and problems for the rest; it
// records every request.
func fakeDeadLetters(t *testing.T) (*httptest.Server, *[]string) {
	t.Helper()
	var seen []string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/deadletters", func(w http.ResponseWriter, r *http.Request) {
		after, _ := strconv.Atoi(r.URL.Query().Get("after"))
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		var entries []map[string]any
		for seq := after + 1; seq <= 5 && len(entries) < limit; seq++ {
			entries = append(entries, map[string]any{"sequence": seq, "time": "2026-11-23T09:30:00Z", "consumer": "provisioner",
				"original_subject": "berth.ws.w" + strconv.Itoa(seq) + ".start_requested", "reason": "failed 6 times:\n\tengine on fire", "event": map[string]any{}})
		}
		page := map[string]any{"entries": entries}
		if last := after + len(entries); last < 5 {
			page["next"] = last
		}
		_ = json.NewEncoder(w).Encode(page)
	})
	mux.HandleFunc("GET /api/v1/deadletters/{seq}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("seq") != "3" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"title":"Not Found","status":404,"code":"dead_letter_not_found","detail":"no dead letter %s"}`, r.PathValue("seq"))
			return
		}
		fmt.Fprint(w, `{"sequence":3,"consumer":"provisioner","event":{"type":"berth.workspace.start_requested"}}`)
	})
	mux.HandleFunc("POST /api/v1/deadletters/{seq}/retry", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("seq") == "4" {
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"title":"Conflict","status":409,"code":"dead_letter_not_retryable","detail":"dead letter 4 is an activity report"}`)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, `{"retried":3,"consumer":"provisioner","redrive_sequence":9}`)
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t" {
			t.Errorf("%s %s without the token", r.Method, r.URL)
		}
		seen = append(seen, r.Method+" "+r.URL.RequestURI())
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func runCtl(t *testing.T, srv *httptest.Server, args ...string) (out, errOut string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	err = run(context.Background(), append([]string{"--token", "t", "--api", srv.URL}, args...), &o, &e)
	return o.String(), e.String(), err
}

func TestDeadLetterList(t *testing.T) {
	srv, seen := fakeDeadLetters(t)
	out, errOut, err := runCtl(t, srv, "deadletter", "list", "--after", "1", "--limit", "2")
	if err != nil {
		t.Fatal(err)
	}
	// Not a terminal: one tab between columns, for scripts.
	want := "SEQ\tTIME\tCONSUMER\tORIGINAL SUBJECT\tREASON\n" +
		"2\t2026-11-23T09:30:00Z\tprovisioner\tberth.ws.w2.start_requested\tfailed 6 times: engine on fire\n" +
		"3\t2026-11-23T09:30:00Z\tprovisioner\tberth.ws.w3.start_requested\tfailed 6 times: engine on fire\n"
	if out != want {
		t.Fatalf("got:\n%q\nwant:\n%q", out, want)
	}
	if !strings.Contains(errOut, "deadletter list --after 3") {
		t.Errorf("want a hint where more follow, got %q", errOut)
	}
	if got := strings.Join(*seen, ", "); got != "GET /api/v1/deadletters?limit=2&after=1" {
		t.Errorf("requests: %s", got)
	}

	*seen = nil
	out, errOut, err = runCtl(t, srv, "deadletters") // the older spelling: all of them
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "\n"); n != 6 || errOut != "" {
		t.Errorf("want a header and 5 rows and no hint, got:\n%s%s", out, errOut)
	}
}

// At a terminal the columns line up.
func TestDeadLetterTableAligned(t *testing.T) {
	var out bytes.Buffer
	err := printDeadLetters(&out, []deadLetter{
		{Sequence: 1, Consumer: "intake", OriginalSubject: "berth.intake.activity", Reason: "no such workspace: x"},
		{Sequence: 12, Consumer: "provisioner", OriginalSubject: "berth.ws.w1.start_requested"},
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	col := strings.Index(lines[0], "ORIGINAL SUBJECT")
	if strings.Contains(out.String(), "\t") || strings.Index(lines[1], "berth.intake") != col || strings.Index(lines[2], "berth.ws.") != col {
		t.Errorf("columns do not line up:\n%s", out.String())
	}
	if !strings.HasSuffix(strings.TrimRight(lines[2], " "), " -") {
		t.Errorf("an empty reason shows as -: %q", lines[2])
	}
}

func TestDeadLetterShowAndRetry(t *testing.T) {
	srv, seen := fakeDeadLetters(t)
	out, _, err := runCtl(t, srv, "deadletter", "show", "3")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "\n  \"event\": {\n    \"type\": \"berth.workspace.start_requested\"") {
		t.Errorf("want indented JSON, got:\n%s", out)
	}
	_, _, err = runCtl(t, srv, "deadletter", "show", "8")
	if err == nil || !strings.Contains(err.Error(), "dead_letter_not_found") {
		t.Errorf("want the API's problem, got %v", err)
	}

	out, _, err = runCtl(t, srv, "deadletter", "retry", "3")
	if err != nil {
		t.Fatal(err)
	}
	if want := "dead letter 3 handed back to provisioner: its message was published on berth.redrive.provisioner (BERTH_DEADLETTER sequence 9)\n"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
	_, _, err = runCtl(t, srv, "deadletter", "retry", "4")
	if err == nil || !strings.Contains(err.Error(), "dead_letter_not_retryable") || !strings.Contains(err.Error(), "activity report") {
		t.Errorf("want the API's refusal with its reason, got %v", err)
	}
	if got := (*seen)[2]; got != "POST /api/v1/deadletters/3/retry" {
		t.Errorf("retry sent %s", got)
	}
}
