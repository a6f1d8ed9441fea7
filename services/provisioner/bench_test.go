package main

import (
	"context"
	"fmt"
	"net/http"
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
		ws := w.waitStatus(id, events.StatusRunning, 60*time.Second)
		evs, err := w.log.Read(context.Background(), id)
		if err != nil {
			b.Fatal(err)
		}
		var requested time.Time
		for _, e := range evs {
			if e.Type == events.TypeStartRequested {
				requested = e.Time
			}
		}
		ds = append(ds, ws.UpdatedAt.Sub(requested))
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
	client := &http.Client{Timeout: time.Second}
	var ds []time.Duration
	pids := int64(128)
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		c, err := w.cli.ContainerCreate(ctx, &container.Config{Image: dockertest.DemoImage},
			&container.HostConfig{NetworkMode: container.NetworkMode(w.network),
				Resources: container.Resources{Memory: 256 << 20, NanoCPUs: 500_000_000, PidsLimit: &pids}}, nil, nil, "")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = w.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}) })
		if err := w.cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
			b.Fatal(err)
		}
		info, err := w.cli.ContainerInspect(ctx, c.ID)
		if err != nil {
			b.Fatal(err)
		}
		url := "http://" + info.NetworkSettings.Networks[w.network].IPAddress + ":8080/healthz"
		for {
			res, err := client.Get(url)
			if err == nil {
				res.Body.Close()
				if res.StatusCode == 200 {
					break
				}
			}
			if time.Since(start) > 30*time.Second {
				b.Fatal("raw container never answered")
			}
			time.Sleep(5 * time.Millisecond)
		}
		ds = append(ds, time.Since(start))
	}
	report(b, ds)
}
