package config

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseBytes(t *testing.T) {
	ok := map[string]int64{"2GiB": 2 << 30, "512Mi": 512 << 20, "1.5G": 1500000000, "1048576": 1 << 20, "64 MiB": 64 << 20, "10KB": 10000}
	for in, want := range ok {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("%s: got %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "lots", "-1GiB", "1XB"} {
		if _, err := ParseBytes(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	if FormatBytes(2<<30) != "2GiB" || FormatBytes(1000) != "1000B" {
		t.Error("FormatBytes")
	}
}

func TestEnvAndFlags(t *testing.T) {
	t.Setenv("BERTH_T_ADDR", "0.0.0.0:9")
	t.Setenv("BERTH_T_N", "7")
	t.Setenv("BERTH_T_MEM", "1GiB")
	s := New("t", io.Discard)
	var addr string
	var n int
	var mem int64
	var d time.Duration
	s.String(&addr, "addr", "BERTH_T_ADDR", "127.0.0.1:1", "")
	s.Int(&n, "n", "BERTH_T_N", 1, "")
	s.Bytes(&mem, "mem", "BERTH_T_MEM", 1, "")
	s.Duration(&d, "d", "BERTH_T_D", time.Second, "")
	if err := s.Parse([]string{"--n", "9"}); err != nil {
		t.Fatal(err)
	}
	if addr != "0.0.0.0:9" || n != 9 || mem != 1<<30 || d != time.Second {
		t.Errorf("env/flag precedence: %s %d %d %s", addr, n, mem, d)
	}

	t.Setenv("BERTH_T_N", "seven")
	t.Setenv("BERTH_T_D", "soon")
	s = New("t", io.Discard)
	s.Int(&n, "n", "BERTH_T_N", 1, "")
	s.Duration(&d, "d", "BERTH_T_D", time.Second, "")
	err := s.Parse(nil)
	if err == nil || !strings.Contains(err.Error(), "BERTH_T_N") || !strings.Contains(err.Error(), "BERTH_T_D") {
		t.Errorf("want both bad settings reported, got %v", err)
	}
}
