// Command benchtable reads `go test -bench` output and prints the table
// of issue 16's figures: each with Berth's value, the raw engine's where
// one is measured, their ratio, the goal and whether it is met. Figures
// no benchmark in the input measured are listed as such, never guessed.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// metrics maps "BenchmarkName/sub unit" to its value (the last seen).
type metrics map[string]float64

// parse reads benchmark result lines: name, iterations, then value-unit
// pairs ("123 ns/op 45.6 launch-p50-ms").
func parse(r io.Reader) (metrics, error) {
	m := metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 { // the GOMAXPROCS suffix
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			m[name+" "+f[i+1]] = v
		}
	}
	return m, sc.Err()
}

// row is one figure of the table.
type row struct {
	figure     string
	berth, raw string // keys into the metrics ("" for raw: no baseline)
	unit       string
	goal       string
	pass       func(berth, raw float64) bool
}

var rows = []row{
	{"cold launch p50, through Traefik (vs docker run + first 200)", "BenchmarkLaunchThroughTraefik launch-p50-ms", "BenchmarkRawDockerRun p50-ms", "ms", "ratio <= 1.0",
		func(b, r float64) bool { return b/r <= 1.0 }},
	{"cold launch p95, through Traefik", "BenchmarkLaunchThroughTraefik launch-p95-ms", "BenchmarkRawDockerRun p95-ms", "ms", "ratio <= 1.2",
		func(b, r float64) bool { return b/r <= 1.2 }},
	{"start requested -> running (provisioner only)", "BenchmarkLaunch p50-ms", "BenchmarkRawDockerRun p50-ms", "ms", "-", nil},
	{"first start of a workspace defined ahead (container prepared) vs docker run", "BenchmarkPreparedLaunch p50-ms", "BenchmarkRawDockerRun p50-ms", "ms", "ratio <= 1.0",
		func(b, r float64) bool { return b/r <= 1.0 }},
	{"stop -> 404 through Traefik, p95", "BenchmarkLaunchThroughTraefik stop404-p95-ms", "", "ms", "<= 500 ms",
		func(b, _ float64) bool { return b <= 500 }},
	{"requests during a stop: not 200/404", "BenchmarkRequestsDuringStop not-200-or-404", "", "", "0",
		func(b, _ float64) bool { return b == 0 }},
	{"launch p50 under 200 history readers that honour Retry-After / idle", "BenchmarkLaunchUnderHistoryReads/readers-honour-retry-after busy/idle", "", "x", "<= 1.2",
		func(b, _ float64) bool { return b <= 1.2 }},
	{"launch p50 under 200 history readers retrying at once / idle", "BenchmarkLaunchUnderHistoryReads/readers-retry-at-once busy/idle", "", "x", "-", nil},
	{"render + atomic write of 10,000 routes", "BenchmarkRenderAndWrite10k ms/write", "", "ms", "< 100 ms",
		func(b, _ float64) bool { return b < 100 }},
	{"reaper sweep, 10,000 running workspaces (watched activity)", "BenchmarkSweepNothingToDo/watched/10000 ms/sweep", "BenchmarkSweepNothingToDo/kv-get/10000 ms/sweep", "ms", "< 100 ms",
		func(b, _ float64) bool { return b < 100 }},
	{"replay: fold rate / raw ordered-consumer rate", "BenchmarkReplay fold-events/s", "BenchmarkReplay raw-events/s", "ev/s", "ratio >= 0.5",
		func(b, r float64) bool { return b/r >= 0.5 }},
	{"log appends, 16 writers", "BenchmarkAppendConcurrent events/s", "", "ev/s", "-", nil},
	{"provisioner backlog drain", "BenchmarkBacklogDrain events/s", "", "ev/s", "-", nil},
	{"warm launch p50 (stopped -> running) vs docker start + first 200", "BenchmarkWarmLaunch p50-ms", "BenchmarkRawDockerStart p50-ms", "ms", "ratio <= 1.05",
		func(b, r float64) bool { return b/r <= 1.05 }},
	{"10 launches at once, wall time, vs 10 docker runs", "BenchmarkConcurrentLaunches/10 p50-ms", "BenchmarkRawConcurrentRuns/10 p50-ms", "ms", "ratio <= 1.2",
		func(b, r float64) bool { return b/r <= 1.2 }},
	{"50 launches at once, wall time, vs 50 docker runs", "BenchmarkConcurrentLaunches/50 p50-ms", "BenchmarkRawConcurrentRuns/50 p50-ms", "ms", "ratio <= 1.2",
		func(b, r float64) bool { return b/r <= 1.2 }},
	{"running recorded -> Traefik's first 200, p95 (route propagation)", "BenchmarkLaunchThroughTraefik route-p95-ms", "", "ms", "<= 50 ms",
		func(b, _ float64) bool { return b <= 50 }},
	{"launch stages p50: API request -> start_requested", "BenchmarkLaunchThroughTraefik api-p50-ms", "", "ms", "-", nil},
	{"launch stages p50: start_requested -> running", "BenchmarkLaunchThroughTraefik provision-p50-ms", "", "ms", "-", nil},
	{"launch stages p50: running -> first 200", "BenchmarkLaunchThroughTraefik route-p50-ms", "", "ms", "-", nil},
	{"Launch -> first command answered in the terminal (berth/workspace-debian), p50", "BenchmarkLaunchToFirstUse/terminal first-use-p50-ms", "", "ms", "<= 2000 ms",
		func(b, _ float64) bool { return b <= 2000 }},
	{"Launch -> first notebook cell's result (berth/workspace-jupyter), p50", "BenchmarkLaunchToFirstUse/notebook first-use-p50-ms", "", "ms", "-", nil},
	{"idle RSS: API with embedded NATS", "BenchmarkIdleRSS api-rss-MB", "", "MB", "< 40 MB", func(b, _ float64) bool { return b < 40 }},
	{"idle RSS: provisioner", "BenchmarkIdleRSS provisioner-rss-MB", "", "MB", "< 40 MB", func(b, _ float64) bool { return b < 40 }},
	{"idle RSS: router-sync", "BenchmarkIdleRSS router-sync-rss-MB", "", "MB", "< 40 MB", func(b, _ float64) bool { return b < 40 }},
}

func format(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// table writes the rows as a Markdown table.
func table(w io.Writer, m metrics) {
	fmt.Fprintln(w, "| figure | Berth | raw / baseline | ratio | goal | met |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- |")
	for _, r := range rows {
		b, okB := m[r.berth]
		raw, okR := m[r.raw]
		cells := []string{r.figure, "not measured", "-", "-", r.goal, "-"}
		if okB {
			cells[1] = format(b) + " " + r.unit
			if okR {
				cells[2] = format(raw) + " " + r.unit
				if raw != 0 {
					cells[3] = format(b / raw)
				}
			}
			if r.pass != nil && (okR || !strings.HasPrefix(r.goal, "ratio")) { // a ratio needs its baseline
				cells[5] = map[bool]string{true: "yes", false: "**no**"}[r.pass(b, raw)]
			}
		}
		fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
	}
}

func main() {
	m, err := parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	table(os.Stdout, m)
}
