// Package hostdisk is the provisioner's host guard: it refuses new
// workspace starts while a disk the platform needs (the log's, the
// archives', the engine's) has less free space than the threshold, so a
// full disk stops new work before it stops JetStream.
package hostdisk

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/berthdev/berth/pkg/platform/config"
)

// Threshold is the least free space: bytes, or a percentage of the disk.
type Threshold struct {
	Bytes   int64
	Percent float64
}

// ParseThreshold reads "2GiB", "512MiB" or "5%".
func ParseThreshold(s string) (Threshold, error) {
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f < 0 || f > 100 {
			return Threshold{}, fmt.Errorf("%q: want a size like 2GiB or a percentage from 0%% to 100%%", s)
		}
		return Threshold{Percent: f}, nil
	}
	n, err := config.ParseBytes(s)
	if err != nil {
		return Threshold{}, fmt.Errorf("%q: want a size like 2GiB or a percentage like 5%%", s)
	}
	return Threshold{Bytes: n}, nil
}

func (t Threshold) String() string {
	if t.Percent > 0 {
		return strconv.FormatFloat(t.Percent, 'f', -1, 64) + "%"
	}
	return config.FormatBytes(t.Bytes)
}

// Low reports whether free bytes of a disk of total bytes are below t.
// Pure; a zero threshold is never low.
func (t Threshold) Low(free, total uint64) bool {
	if t.Percent > 0 {
		return float64(free) < float64(total)*t.Percent/100
	}
	return t.Bytes > 0 && free < uint64(t.Bytes)
}

// Space is one disk's free and total bytes.
type Space struct{ Free, Total uint64 }

// Statfs measures the disk holding path (free: what an unprivileged
// writer may use).
func Statfs(path string) (Space, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return Space{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	return Space{Free: st.Bavail * uint64(st.Bsize), Total: st.Blocks * uint64(st.Bsize)}, nil
}

// Guard watches some folders' disks.
type Guard struct {
	// Paths are the folders whose disks must keep room (unreadable ones
	// are reported, never counted as full).
	Paths []string
	Min   Threshold
	// Stat measures a path's disk (nil: Statfs).
	Stat func(path string) (Space, error)
}

// Short says which watched disk is below the threshold, if one is. A disk
// that cannot be measured does not block starts.
func (g *Guard) Short() (string, bool) {
	stat := g.Stat
	if stat == nil {
		stat = Statfs
	}
	for _, p := range g.Paths {
		sp, err := stat(p)
		if err != nil {
			continue
		}
		if g.Min.Low(sp.Free, sp.Total) {
			return fmt.Sprintf("the host disk holding %s has %s free of %s, below BERTH_MIN_FREE_DISK=%s",
				p, config.FormatBytes(int64(sp.Free)&^(1<<20-1)), config.FormatBytes(int64(sp.Total)&^(1<<20-1)), g.Min), true
		}
	}
	return "", false
}
