// Package devclients decides who may mint development tokens: clients on
// this machine only. Loopback always; BERTH_DEV_TOKEN_CLIENTS adds networks,
// and the word "gateway" adds this host's default gateway, which is how the
// host reaches a container through a published port (compose).
package devclients

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
)

// Allowed is the set of client networks besides loopback.
type Allowed []*net.IPNet

// Parse reads a comma-separated list of CIDRs, addresses and "gateway";
// route is /proc/net/route (read only if "gateway" is listed).
func Parse(spec string, route func() (io.ReadCloser, error)) (Allowed, error) {
	var out Allowed
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == "":
		case item == "gateway":
			gw, err := defaultGateway(route)
			if err != nil {
				return nil, fmt.Errorf("dev token clients %q: %w", item, err)
			}
			out = append(out, &net.IPNet{IP: gw, Mask: net.CIDRMask(32, 32)})
		case strings.Contains(item, "/"):
			_, n, err := net.ParseCIDR(item)
			if err != nil {
				return nil, fmt.Errorf("dev token clients %q: %w", item, err)
			}
			out = append(out, n)
		default:
			ip := net.ParseIP(item)
			if ip == nil {
				return nil, fmt.Errorf("dev token clients %q: not an address, a CIDR or \"gateway\"", item)
			}
			bits := 128
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
		}
	}
	return out, nil
}

// ProcRoute opens the kernel's IPv4 routing table.
func ProcRoute() (io.ReadCloser, error) { return os.Open("/proc/net/route") }

// Permits reports whether the TCP peer remoteAddr ("ip:port", as the
// server saw it: never a forwarded header) may mint tokens.
func (a Allowed) Permits(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	for _, n := range a {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// defaultGateway reads the gateway of the default route (destination 0).
func defaultGateway(route func() (io.ReadCloser, error)) (net.IP, error) {
	f, err := route()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[1] != "00000000" {
			continue
		}
		b, err := hex.DecodeString(fields[2])
		if err != nil || len(b) != 4 {
			continue
		}
		ip := make(net.IP, 4)
		binary.BigEndian.PutUint32(ip, binary.LittleEndian.Uint32(b))
		return ip, nil
	}
	return nil, fmt.Errorf("no default route")
}
