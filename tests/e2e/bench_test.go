package e2e

import (
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"
)

// BenchmarkLaunchThroughTraefik measures what a user waits for: POST
// /workspaces/launch -> first 200 at the returned URL through Traefik, and
// stop -> 404 at that URL. Run with -benchtime 20x.
func BenchmarkLaunchThroughTraefik(b *testing.B) {
	s := newStack(b)
	admin := s.token("root", "admin")
	if status, body, _ := call(b, "POST", "http://"+s.api+"/api/v1/images", admin, map[string]any{"ref": "berth/workspace-demo:latest"}); status != 201 {
		b.Fatalf("add image: %d %s", status, body)
	}
	fast := &http.Client{Timeout: 300 * time.Millisecond}
	poll := func(url, token string, want int) time.Duration {
		start := time.Now()
		for {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			if res, err := fast.Do(req); err == nil {
				res.Body.Close()
				if res.StatusCode == want {
					return time.Since(start)
				}
			}
			if time.Since(start) > 60*time.Second {
				b.Fatalf("%s never answered %d", url, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	var launches, stops []time.Duration
	for i := 0; b.Loop(); i++ {
		tok := s.token(fmt.Sprintf("user%d", i), "user")
		start := time.Now()
		ws := s.launch(tok)
		poll(ws.URL, tok, 200)
		launches = append(launches, time.Since(start))
		b.StopTimer()
		s.lifecycle(tok, ws.ID, "stop")
		stops = append(stops, poll(ws.URL, tok, 404))
		b.StartTimer()
	}
	pct := func(ds []time.Duration, p float64) float64 {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return float64(ds[int(p*float64(len(ds)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(launches, 0.5), "launch-p50-ms")
	b.ReportMetric(pct(launches, 0.95), "launch-p95-ms")
	b.ReportMetric(pct(stops, 0.5), "stop404-p50-ms")
	b.ReportMetric(pct(stops, 0.95), "stop404-p95-ms")
}
