package devclients

import (
	"io"
	"strings"
	"testing"
)

const route = `Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	0100A8C0	0003	0	0	0	00000000	0	0	0
eth0	0000A8C0	00000000	0001	0	0	0	00FFFFFF	0	0	0
`

func TestPermits(t *testing.T) {
	a, err := Parse("gateway, 10.9.0.0/16, 172.16.0.5", func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(route)), nil })
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"127.0.0.1:5000": true, "[::1]:5000": true, "192.168.0.1:5000": true, "10.9.3.4:1": true, "172.16.0.5:1": true,
		"192.168.0.2:5000": false, "10.10.0.1:1": false, "203.0.113.9:80": false, "garbage": false,
	} {
		if got := a.Permits(addr); got != want {
			t.Errorf("%s: %v, want %v", addr, got, want)
		}
	}
	none, _ := Parse("", nil)
	if none.Permits("10.0.0.1:1") || !none.Permits("127.0.0.1:1") {
		t.Error("default: loopback only")
	}
	for _, bad := range []string{"nonsense", "10.0.0.0/99"} {
		if _, err := Parse(bad, nil); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
