package hostdisk

import (
	"errors"
	"strings"
	"testing"
)

func TestThreshold(t *testing.T) {
	const gib = 1 << 30
	cases := []struct {
		in          string
		free, total uint64
		low         bool
	}{
		{"2GiB", 1 * gib, 100 * gib, true},
		{"2GiB", 2 * gib, 100 * gib, false},
		{"2GiB", 2*gib - 1, 100 * gib, true},
		{"5%", 4 * gib, 100 * gib, true},
		{"5%", 5 * gib, 100 * gib, false},
		{"5 %", 6 * gib, 100 * gib, false},
		{"100%", 99 * gib, 100 * gib, true},
		{"0", 0, 100 * gib, false},
		{"0%", 0, 100 * gib, false},
	}
	for _, c := range cases {
		th, err := ParseThreshold(c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if got := th.Low(c.free, c.total); got != c.low {
			t.Errorf("%s with %d free of %d: low=%v, want %v", c.in, c.free, c.total, got, c.low)
		}
	}
	for _, bad := range []string{"", "lots", "-1GiB", "101%", "-5%", "x%"} {
		if _, err := ParseThreshold(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestGuard: the first watched disk below the threshold refuses, naming
// it; an unmeasurable path does not.
func TestGuard(t *testing.T) {
	disks := map[string]Space{"/data": {Free: 50 << 30, Total: 100 << 30}, "/var/lib/docker": {Free: 1 << 30, Total: 100 << 30}}
	stat := func(p string) (Space, error) {
		if sp, ok := disks[p]; ok {
			return sp, nil
		}
		return Space{}, errors.New("no such folder")
	}
	g := Guard{Paths: []string{"/missing", "/data"}, Min: Threshold{Bytes: 2 << 30}, Stat: stat}
	if why, short := g.Short(); short {
		t.Fatalf("refused with room: %s", why)
	}
	g.Paths = append(g.Paths, "/var/lib/docker")
	why, short := g.Short()
	if !short || !strings.Contains(why, "/var/lib/docker") || !strings.Contains(why, "1GiB free of 100GiB") || !strings.Contains(why, "BERTH_MIN_FREE_DISK=2GiB") {
		t.Fatalf("got %q, %v", why, short)
	}
	// The real disk of this test's temporary folder.
	real := Guard{Paths: []string{t.TempDir()}, Min: Threshold{Percent: 100}}
	if _, short := real.Short(); !short {
		t.Fatal("a disk is never 100% free, yet 100% was not low")
	}
}
