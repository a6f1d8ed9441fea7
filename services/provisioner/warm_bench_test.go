package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/dockertest"
)

// requestedToRunning is the time from the last start request to the
// running that answered it, by the events' own timestamps.
func (w *world) requestedToRunning(b *testing.B, id string) time.Duration {
	evs, err := w.log.Read(context.Background(), id)
	if err != nil {
		b.Fatal(err)
	}
	var requested, running time.Time
	for _, e := range evs {
		switch e.Type {
		case events.TypeStartRequested:
			requested = e.Time
		case events.TypeRunning:
			running = e.Time
		}
	}
	return running.Sub(requested)
}

// BenchmarkWarmLaunch: a stopped workspace started again (its container
// exists with the same spec: only a start and the health check), start
// requested -> running. Compare BenchmarkRawDockerStart. -benchtime 20x.
func BenchmarkWarmLaunch(b *testing.B) {
	w := newWorld(b)
	w.startProvisioner("--stop-drain", "0s")
	id := w.create("warm", dockertest.DemoImage, true)
	w.waitStatus(id, events.StatusRunning, 60*time.Second)
	var ds []time.Duration
	for b.Loop() {
		b.StopTimer()
		w.request(id, &events.StopRequested{})
		w.waitStatus(id, events.StatusStopped, 60*time.Second)
		b.StartTimer()
		w.request(id, &events.StartRequested{})
		w.waitStatus(id, events.StatusRunning, 60*time.Second)
		ds = append(ds, w.requestedToRunning(b, id))
	}
	report(b, ds)
}

// BenchmarkRawDockerStart is the warm baseline: docker start of a stopped
// container of the same image, until its first HTTP 200.
func BenchmarkRawDockerStart(b *testing.B) {
	w := newWorld(b)
	ctx := context.Background()
	if _, err := w.cli.NetworkCreate(ctx, w.network, network.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	id, err := createRaw(b, w)
	if err != nil {
		b.Fatal(err)
	}
	var ds []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := w.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
			b.Fatal(err)
		}
		if err := awaitRaw(w, id, start); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
		b.StopTimer()
		timeout := 0
		if err := w.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &timeout}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	report(b, ds)
}

// createRaw creates a container of the demo image on the world's network
// with the limits Berth gives it, removed when the benchmark ends.
func createRaw(b *testing.B, w *world) (string, error) {
	ctx := context.Background()
	pids := int64(128)
	c, err := w.cli.ContainerCreate(ctx, &container.Config{Image: dockertest.DemoImage},
		&container.HostConfig{NetworkMode: container.NetworkMode(w.network), Resources: container.Resources{Memory: 256 << 20, NanoCPUs: 500_000_000, PidsLimit: &pids}}, nil, nil, "")
	if err != nil {
		return "", err
	}
	b.Cleanup(func() { _ = w.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}) })
	return c.ID, nil
}

// awaitRaw polls a raw container's health endpoint until it answers 200.
func awaitRaw(w *world, cid string, start time.Time) error {
	info, err := w.cli.ContainerInspect(context.Background(), cid)
	if err != nil {
		return err
	}
	url := "http://" + info.NetworkSettings.Networks[w.network].IPAddress + ":8080/healthz"
	client := &http.Client{Timeout: time.Second}
	for {
		if res, err := client.Get(url); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		if time.Since(start) > 30*time.Second {
			return fmt.Errorf("raw container %s never answered", cid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkConcurrentLaunches: 10 and 50 workspaces asked to start at
// once; wall time from the first request to the last running. Compare
// BenchmarkRawConcurrentRuns. -benchtime 3x.
func BenchmarkConcurrentLaunches(b *testing.B) {
	for _, n := range []int{10, 50} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchConcurrentLaunches(b, n) })
	}
}

func benchConcurrentLaunches(b *testing.B, n int) {
	w := newWorld(b)
	w.startProvisioner()
	var ds []time.Duration
	for round := 0; b.Loop(); round++ {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = w.create(fmt.Sprintf("c%d-%d", round, i), dockertest.DemoImage, false)
		}
		start := time.Now()
		for _, id := range ids {
			w.request(id, &events.StartRequested{})
		}
		for _, id := range ids {
			w.waitStatus(id, events.StatusRunning, 120*time.Second)
		}
		var last time.Time
		for _, id := range ids {
			if ws := w.state(id); ws.StatusSince.After(last) {
				last = ws.StatusSince
			}
		}
		ds = append(ds, last.Sub(start))
	}
	report(b, ds)
}

// BenchmarkRawConcurrentRuns: 10 and 50 docker run (create + start +
// first 200) started together; wall time until the last answers.
func BenchmarkRawConcurrentRuns(b *testing.B) {
	for _, n := range []int{10, 50} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchRawConcurrentRuns(b, n) })
	}
}

func benchRawConcurrentRuns(b *testing.B, n int) {
	w := newWorld(b)
	ctx := context.Background()
	if _, err := w.cli.NetworkCreate(ctx, w.network, network.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	var ds []time.Duration
	for b.Loop() {
		start := time.Now()
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id, err := createRaw(b, w)
				if err != nil {
					b.Error(err)
					return
				}
				if err := w.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
					b.Error(err)
					return
				}
				if err := awaitRaw(w, id, start); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		ds = append(ds, time.Since(start))
	}
	report(b, ds)
}

// BenchmarkPreparedLaunch: the first start of a workspace defined ahead of
// use, whose container the provisioner prepared: start requested ->
// running. Compare BenchmarkRawDockerStart. -benchtime 20x.
func BenchmarkPreparedLaunch(b *testing.B) {
	w := newWorld(b)
	w.startProvisioner()
	var ds []time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		id := w.create(fmt.Sprintf("prep%d", i), dockertest.DemoImage, false)
		for len(w.containers(id)) == 0 {
			time.Sleep(20 * time.Millisecond)
		}
		b.StartTimer()
		w.request(id, &events.StartRequested{})
		w.waitStatus(id, events.StatusRunning, 60*time.Second)
		ds = append(ds, w.requestedToRunning(b, id))
	}
	report(b, ds)
}
