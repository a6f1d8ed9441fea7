package logserver

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/berthdev/berth/pkg/events"
)

// TestFit: a reply always fits the bus's message size, whatever the
// output holds (escape sequences grow sixfold in JSON); the newest lines
// are kept and the cut is said.
func TestFit(t *testing.T) {
	line := strings.Repeat("\x1b\x07", 30) + "\n"
	logs := strings.Repeat(line, 8000) + "the last line\n" // 488 KiB, ~2.9 MiB as JSON
	b, err := fit(events.LogsReply{Logs: logs}, 1<<20-1024)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 1<<20-1024 {
		t.Fatalf("%d bytes: over the limit", len(b))
	}
	var r events.LogsReply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if !r.Truncated || !strings.HasSuffix(r.Logs, "the last line\n") || !strings.HasPrefix(r.Logs, "\x1b\x07") {
		t.Fatalf("truncated %v, %d bytes kept, starts %q", r.Truncated, len(r.Logs), r.Logs[:10])
	}
	small, _ := fit(events.LogsReply{Logs: "a <b> & c\n"}, 1<<20)
	if !strings.Contains(string(small), "a <b> & c") {
		t.Fatalf("HTML characters escaped: %s", small)
	}
}
