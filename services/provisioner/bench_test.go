package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/dockertest"
)

// report prints p50/p95 (ms) of ds as benchmark metrics.
func report(b *testing.B, ds []time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	at := func(p float64) float64 { return float64(ds[int(p*float64(len(ds)-1))].Microseconds()) / 1000 }
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.95), "p95-ms")
}

// BenchmarkLaunch measures "start requested" appended -> "running"
// appended (container created, started and answering its health check),
// from the two events' own timestamps. Run with -benchtime 20x.
func BenchmarkLaunch(b *testing.B) {
	w := newWorld(b)
	w.startProvisioner()
	var ds []time.Duration
	for i := 0; b.Loop(); i++ {
		id := w.create(fmt.Sprintf("bench%d", i), dockertest.DemoImage, true)
		w.waitStatus(id, events.StatusRunning, 60*time.Second)
		ds = append(ds, w.requestedToRunning(b, id))
	}
	report(b, ds)
}

// BenchmarkRawDockerRun is the baseline: create + start the same image on
// the same network with the same limits, until its first HTTP 200.
func BenchmarkRawDockerRun(b *testing.B) {
	w := newWorld(b)
	ctx := context.Background()
	if _, err := w.cli.NetworkCreate(ctx, w.network, network.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	var ds []time.Duration
	for b.Loop() {
		start := time.Now()
		id, err := createRaw(b, w)
		if err != nil {
			b.Fatal(err)
		}
		if err := w.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
			b.Fatal(err)
		}
		if err := awaitRaw(w, id, start); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	report(b, ds)
}

// BenchmarkArchiveRestore measures, on a home volume holding 64 MiB
// (pseudo-random, so gzip cannot shrink it away), archive requested ->
// archived (written, fsynced, read back and verified) and restore requested
// -> restored (checksum verified, volume recreated and filled), from the
// events' own timestamps. Run with -benchtime 5x or more.
func BenchmarkArchiveRestore(b *testing.B) {
	w := newWorld(b)
	w.startProvisioner("--archive-dir", b.TempDir())
	id := w.create("archbench", dockertest.DemoImage, true)
	ws := w.waitStatus(id, events.StatusRunning, 60*time.Second)
	const size = 64 << 20
	if err := w.cli.CopyToContainer(context.Background(), ws.Endpoint.ContainerID, "/home/coder", bigTar(b, size), container.CopyToContainerOptions{}); err != nil {
		b.Fatal(err)
	}
	w.request(id, &events.StopRequested{})
	w.waitStatus(id, events.StatusStopped, 30*time.Second)
	span := func(from, to events.Type) time.Duration {
		evs, err := w.log.Read(context.Background(), id)
		if err != nil {
			b.Fatal(err)
		}
		var start time.Time
		for _, e := range evs {
			if e.Type == from {
				start = e.Time
			}
		}
		return evs[len(evs)-1].Time.Sub(start)
	}
	var archive, restore []time.Duration
	for b.Loop() {
		w.request(id, &events.ArchiveRequested{})
		w.waitStatus(id, events.StatusArchived, 120*time.Second)
		archive = append(archive, span(events.TypeArchiveRequested, events.TypeArchived))
		w.request(id, &events.DeleteRequested{})
		w.waitStatus(id, events.StatusDeleted, 30*time.Second)
		w.request(id, &events.RestoreRequested{})
		w.waitStatus(id, events.StatusStopped, 120*time.Second)
		restore = append(restore, span(events.TypeRestoreRequested, events.TypeRestored))
	}
	mb := float64(size) / (1 << 20)
	med := func(ds []time.Duration) time.Duration {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	b.ReportMetric(float64(med(archive).Milliseconds()), "archive-p50-ms")
	b.ReportMetric(mb/med(archive).Seconds(), "archive-MiB/s")
	b.ReportMetric(float64(med(restore).Milliseconds()), "restore-p50-ms")
	b.ReportMetric(mb/med(restore).Seconds(), "restore-MiB/s")
}

// bigTar is one file of n pseudo-random bytes.
func bigTar(tb testing.TB, n int) io.Reader {
	data := make([]byte, n)
	x := uint64(88172645463325252)
	for i := range data {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		data[i] = byte(x)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "big.bin", Mode: 0o644, Size: int64(n), Uid: 1000, Gid: 1000, ModTime: time.Now()}); err != nil {
		tb.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		tb.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return &buf
}
