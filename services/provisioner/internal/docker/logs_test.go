package docker

import (
	"bytes"
	"strings"
	"testing"
)

// TestKeepLast: only the newest max bytes are kept, whatever the write
// sizes, and dropping is reported.
func TestKeepLast(t *testing.T) {
	for _, sizes := range [][]int{{3}, {10}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {25}, {7, 7, 7, 7}} {
		k := &keepLast{max: 10}
		var all bytes.Buffer
		for i, n := range sizes {
			p := []byte(strings.Repeat(string(rune('a'+i%26)), n))
			all.Write(p)
			if got, err := k.Write(p); got != n || err != nil {
				t.Fatalf("%v: write %d: %d, %v", sizes, n, got, err)
			}
		}
		want := all.Bytes()
		if len(want) > 10 {
			want = want[len(want)-10:]
		}
		if got := k.bytes(); !bytes.Equal(got, want) || k.dropped != (all.Len() > 10) {
			t.Errorf("%v: kept %q (dropped %v), want %q", sizes, got, k.dropped, want)
		}
	}
}
