package main

import (
	"strings"
	"testing"
)

// TestTable: metrics are read from go test's output (GOMAXPROCS suffix
// dropped, sub-benchmarks kept) and each figure is judged against its
// goal; what no benchmark measured says so.
func TestTable(t *testing.T) {
	out := `goos: linux
BenchmarkLaunchThroughTraefik-2   	      20	 500000 ns/op	       543.0 launch-p50-ms	       610.0 launch-p95-ms	        81.00 stop404-p50-ms	        95.00 stop404-p95-ms
BenchmarkRawDockerRun-2   	      20	 400000 ns/op	       400.0 p50-ms	       450.0 p95-ms
BenchmarkSweepNothingToDo/watched/10000-2         	      50	  3000000 ns/op	         3.000 ms/sweep
BenchmarkReplay-2   	       1	7000000000 ns/op	    150000 fold-events/s	         0.55 fold/raw	    270000 raw-events/s
PASS`
	m, err := parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if m["BenchmarkSweepNothingToDo/watched/10000 ms/sweep"] != 3 || m["BenchmarkRawDockerRun p95-ms"] != 450 {
		t.Fatalf("parsed %v", m)
	}
	var b strings.Builder
	table(&b, m)
	got := b.String()
	for _, want := range []string{
		"| cold launch p50, through Traefik (vs docker run + first 200) | 543.0 ms | 400.0 ms | 1.36 | ratio <= 1.0 | **no** |",
		"| cold launch p95, through Traefik | 610.0 ms | 450.0 ms | 1.36 | ratio <= 1.2 | **no** |",
		"| stop -> 404 through Traefik, p95 | 95.0 ms | - | - | <= 500 ms | yes |",
		"| reaper sweep, 10,000 running workspaces (watched activity) | 3.00 ms | - | - | < 100 ms | yes |",
		"| replay: fold rate / raw ordered-consumer rate | 150000 ev/s | 270000 ev/s | 0.56 | ratio >= 0.5 | yes |",
		"| idle RSS: router-sync | not measured | - | - | < 40 MB | - |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing row %q in\n%s", want, got)
		}
	}
}
