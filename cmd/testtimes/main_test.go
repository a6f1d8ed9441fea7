package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestSlowestFirst: packages and top-level tests are printed slowest
// first, subtests and non-JSON lines are left out, and top bounds the tests.
func TestSlowestFirst(t *testing.T) {
	in := strings.Join([]string{
		`# some build output`,
		`{"Action":"run","Package":"a","Test":"TestX"}`,
		`{"Action":"pass","Package":"a","Test":"TestX","Elapsed":2.5}`,
		`{"Action":"pass","Package":"a","Test":"TestX/sub","Elapsed":2.4}`,
		`{"Action":"fail","Package":"b","Test":"TestY","Elapsed":9}`,
		`{"Action":"pass","Package":"a","Test":"TestZ","Elapsed":0.1}`,
		`{"Action":"pass","Package":"a","Elapsed":3}`,
		`{"Action":"fail","Package":"b","Elapsed":10}`,
	}, "\n")
	pkgs, tests, err := read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 2 || len(tests) != 3 {
		t.Fatalf("packages %v, tests %v", pkgs, tests)
	}
	var out bytes.Buffer
	write(&out, pkgs, tests, 2)
	got := out.String()
	if strings.Index(got, "| b | 10.0 | fail |") > strings.Index(got, "| a | 3.0 | pass |") {
		t.Errorf("packages not slowest first:\n%s", got)
	}
	if !strings.Contains(got, "| b TestY | 9.0 | fail |\n| a TestX | 2.5 | pass |\n") || strings.Contains(got, "TestZ") || strings.Contains(got, "sub") {
		t.Errorf("tests:\n%s", got)
	}
}
