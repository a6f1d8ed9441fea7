package auditchain_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/berthdev/berth/pkg/events/auditchain"
)

// export writes events with sequences 10, 11, 13, 14, 20 (gaps: other
// events of the log left out by a filter are fine).
func export(t *testing.T) []string {
	var buf bytes.Buffer
	w, err := auditchain.NewWriter(&buf, auditchain.Header{FirstSequence: 10, Since: "2026-11-24T00:00:00Z"})
	if err != nil {
		t.Fatal(err)
	}
	for i, seq := range []uint64{10, 11, 13, 14, 20} {
		ev := fmt.Sprintf(`{"type": "berth.workspace.started", "actor":"user:alice", "subject":"ws-%d", "data":{"n":%d}}`, i, i)
		if err := w.Write(seq, []byte(ev)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
}

func verify(lines []string) (int, error) {
	return auditchain.Verify(strings.NewReader(strings.Join(lines, "\n") + "\n"))
}

// TestVerify: an intact export verifies; every kind of tampering fails at
// the line where it shows.
func TestVerify(t *testing.T) {
	lines := export(t) // header, 5 events (lines 2-6), trailer (line 7)
	if n, err := verify(lines); err != nil || n != 5 {
		t.Fatalf("intact: %d events, %v", n, err)
	}
	edit := func(i int, f func(string) string) []string {
		out := append([]string(nil), lines...)
		out[i] = f(out[i])
		return out
	}
	drop := func(i int) []string { return append(append([]string(nil), lines[:i]...), lines[i+1:]...) }
	for name, c := range map[string]struct {
		lines []string
		line  int
	}{
		"event edited":           {edit(3, func(s string) string { return strings.Replace(s, "alice", "mallory", 1) }), 4},
		"sequence edited":        {edit(3, func(s string) string { return strings.Replace(s, `"sequence":13`, `"sequence":12`, 1) }), 4},
		"middle line removed":    {drop(3), 4},
		"first event removed":    {drop(1), 2},
		"last event removed":     {drop(5), 6},
		"line inserted":          {append(append(append([]string(nil), lines[:3]...), lines[2]), lines[3:]...), 4},
		"lines reordered":        {append(append(append([]string(nil), lines[:2]...), lines[3], lines[2]), lines[4:]...), 3},
		"trailer removed":        {drop(6), 7},
		"header edited":          {edit(0, func(s string) string { return strings.Replace(s, `"first_sequence":10`, `"first_sequence":11`, 1) }), 2},
		"header removed":         {drop(0), 1},
		"line after the trailer": {append(append([]string(nil), lines...), lines[2]), 8},
		"garbage line":           {edit(2, func(string) string { return "not json" }), 3},
		"trailer count edited":   {edit(6, func(s string) string { return strings.Replace(s, `"count":5`, `"count":4`, 1) }), 7},
		"another event edited":   {edit(2, func(s string) string { return strings.Replace(s, `"n":1`, `"n":2`, 1) }), 3},
	} {
		_, err := verify(c.lines)
		var bad *auditchain.BadLine
		if !errors.As(err, &bad) {
			t.Errorf("%s: %v, want a bad line", name, err)
			continue
		}
		if bad.Line != c.line {
			t.Errorf("%s: bad line %d (%s), want %d", name, bad.Line, bad.Reason, c.line)
		}
	}
}

// TestCanonical: the hash does not depend on key order or spacing, so an
// event re-encoded by another tool still verifies.
func TestCanonical(t *testing.T) {
	a, err := auditchain.Canonical([]byte(`{"b": 1, "a": {"y": 2.50, "x": [1, 2]}}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := auditchain.Canonical([]byte(`{"a":{"x":[1,2],"y":2.50},"b":1}`))
	if string(a) != string(b) || string(a) != `{"a":{"x":[1,2],"y":2.50},"b":1}` {
		t.Fatalf("canonical forms differ: %s vs %s", a, b)
	}
	if c, _ := auditchain.Canonical([]byte(`{"reason":"a<b & c>d"}`)); string(c) != `{"reason":"a<b & c>d"}` {
		t.Fatalf("HTML-escaped: %s", c)
	}
	if _, err := auditchain.Canonical([]byte(`{"a":`)); err == nil {
		t.Fatal("broken JSON accepted")
	}
}
