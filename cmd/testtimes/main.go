// Command testtimes reads `go test -json` on stdin and prints each
// package's wall time and the slowest tests (make test-times).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is the part of a test2json line this reads.
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
}

// timing is one package's or test's outcome.
type timing struct {
	Name    string
	Seconds float64
	Action  string
}

func main() {
	top := flag.Int("top", 10, "how many of the slowest tests to print")
	flag.Parse()
	pkgs, tests, err := read(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testtimes:", err)
		os.Exit(1)
	}
	write(os.Stdout, pkgs, tests, *top)
}

// read collects the packages' and the top-level tests' final events.
func read(r io.Reader) (pkgs, tests []timing, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue // go test's own lines (build output) are not JSON
		}
		if e.Action != "pass" && e.Action != "fail" && e.Action != "skip" {
			continue
		}
		switch {
		case e.Test == "":
			pkgs = append(pkgs, timing{Name: e.Package, Seconds: e.Elapsed, Action: e.Action})
		case !strings.Contains(e.Test, "/"): // subtests are inside their test's time
			tests = append(tests, timing{Name: e.Package + " " + e.Test, Seconds: e.Elapsed, Action: e.Action})
		}
	}
	return pkgs, tests, sc.Err()
}

// write prints packages slowest first, then the top slowest tests.
func write(w io.Writer, pkgs, tests []timing, top int) {
	slowest := func(ts []timing) {
		sort.SliceStable(ts, func(i, j int) bool { return ts[i].Seconds > ts[j].Seconds })
	}
	slowest(pkgs)
	slowest(tests)
	fmt.Fprintln(w, "| package | seconds | result |\n|---|---:|---|")
	for _, p := range pkgs {
		fmt.Fprintf(w, "| %s | %.1f | %s |\n", p.Name, p.Seconds, p.Action)
	}
	fmt.Fprintf(w, "\n| slowest tests | seconds | result |\n|---|---:|---|\n")
	for i, t := range tests {
		if i == top {
			break
		}
		fmt.Fprintf(w, "| %s | %.1f | %s |\n", t.Name, t.Seconds, t.Action)
	}
}
