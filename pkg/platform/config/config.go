// Package config binds command-line flags to BERTH_* environment variables:
// every setting has a flag, an environment variable and a default that works
// out of the box, in that order of precedence.
package config

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Set wraps a FlagSet and collects malformed environment values, so a
// service reports every bad setting at once instead of the first.
type Set struct {
	FS   *flag.FlagSet
	errs []string
}

// New returns a Set for the named program; usage and errors go to out.
func New(name string, out io.Writer) *Set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return &Set{FS: fs}
}

func (s *Set) env(key string) (string, bool) {
	v, ok := os.LookupEnv(key)
	return strings.TrimSpace(v), ok && strings.TrimSpace(v) != ""
}

func usage(u, key string) string { return fmt.Sprintf("%s (env %s)", u, key) }

// String binds a string setting.
func (s *Set) String(dst *string, name, key, def, u string) {
	if v, ok := s.env(key); ok {
		def = v
	}
	s.FS.StringVar(dst, name, def, usage(u, key))
}

// Int binds an integer setting.
func (s *Set) Int(dst *int, name, key string, def int, u string) {
	if v, ok := s.env(key); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Sprintf("%s=%q: not an integer", key, v))
		} else {
			def = n
		}
	}
	s.FS.IntVar(dst, name, def, usage(u, key))
}

// Bool binds a boolean setting.
func (s *Set) Bool(dst *bool, name, key string, def bool, u string) {
	if v, ok := s.env(key); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Sprintf("%s=%q: not a boolean", key, v))
		} else {
			def = b
		}
	}
	s.FS.BoolVar(dst, name, def, usage(u, key))
}

// Duration binds a duration setting ("90s", "24h").
func (s *Set) Duration(dst *time.Duration, name, key string, def time.Duration, u string) {
	if v, ok := s.env(key); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Sprintf("%s=%q: not a duration like 90s or 24h", key, v))
		} else {
			def = d
		}
	}
	s.FS.DurationVar(dst, name, def, usage(u, key))
}

// Float binds a decimal setting.
func (s *Set) Float(dst *float64, name, key string, def float64, u string) {
	if v, ok := s.env(key); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			s.errs = append(s.errs, fmt.Sprintf("%s=%q: not a number", key, v))
		} else {
			def = f
		}
	}
	s.FS.Float64Var(dst, name, def, usage(u, key))
}

// Bytes binds a size setting written as 512MiB, 2GiB, 1.5G or plain bytes.
func (s *Set) Bytes(dst *int64, name, key string, def int64, u string) {
	if v, ok := s.env(key); ok {
		n, err := ParseBytes(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Sprintf("%s=%q: %v", key, v, err))
		} else {
			def = n
		}
	}
	*dst = def
	s.FS.Func(name, usage(u+fmt.Sprintf(" (default %s)", FormatBytes(def)), key), func(v string) error {
		n, err := ParseBytes(v)
		if err != nil {
			return err
		}
		*dst = n
		return nil
	})
}

// Parse parses args and returns every malformed setting in one error.
func (s *Set) Parse(args []string) error {
	if err := s.FS.Parse(args); err != nil {
		return err
	}
	if len(s.errs) > 0 {
		return fmt.Errorf("bad configuration: %s", strings.Join(s.errs, "; "))
	}
	return nil
}

var units = []struct {
	suffix string
	mult   float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"B", 1},
}

// ParseBytes parses a human size: "2GiB", "512Mi", "1.5G", "1048576".
func ParseBytes(v string) (int64, error) {
	v = strings.TrimSpace(v)
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("not a size like 512MiB or 2GiB")
	}
	return int64(f * mult), nil
}

// FormatBytes renders n in the largest binary unit that divides it.
func FormatBytes(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return fmt.Sprintf("%d%s", n/u.m, u.s)
		}
	}
	return fmt.Sprintf("%dB", n)
}

// Common are the settings every service has.
type Common struct {
	LogLevel      string
	LogFormat     string
	ShutdownGrace time.Duration
	// The service's identity on the bus: user (default: the service's
	// name) and password, or a file holding it (default: where the API's
	// embedded NATS keeps it, data/nats-users/<user>.password).
	NATSUser         string
	NATSPassword     string
	NATSPasswordFile string
	// TLS to the bus (see natsbus.Identity).
	NATSCAFile, NATSCertFile, NATSKeyFile string
}

// Common binds the settings every service has.
func (s *Set) Common(c *Common) {
	s.String(&c.LogLevel, "log-level", "BERTH_LOG_LEVEL", "info", "debug, info, warn or error")
	s.String(&c.LogFormat, "log-format", "BERTH_LOG_FORMAT", "text", "text or json")
	s.Duration(&c.ShutdownGrace, "shutdown-grace", "BERTH_SHUTDOWN_GRACE", 10*time.Second, "how long shutdown waits for in-flight work")
	s.String(&c.NATSUser, "nats-user", "BERTH_NATS_USER", "", "identity on the bus (default: the service's name)")
	s.String(&c.NATSPassword, "nats-password", "BERTH_NATS_PASSWORD", "", "password of that identity (prefer BERTH_NATS_PASSWORD_FILE)")
	s.String(&c.NATSPasswordFile, "nats-password-file", "BERTH_NATS_PASSWORD_FILE", "", "file holding the password (default: data/nats-users/<user>.password, where the API's embedded NATS writes it)")
	s.String(&c.NATSCAFile, "nats-ca-file", "BERTH_NATS_CA_FILE", "", "PEM file of the CA that signed the NATS server's certificate (TLS; a tls:// URL without it trusts the system's roots)")
	s.String(&c.NATSCertFile, "nats-cert-file", "BERTH_NATS_CERT_FILE", "", "client certificate (PEM) for a NATS server that requires one")
	s.String(&c.NATSKeyFile, "nats-key-file", "BERTH_NATS_KEY_FILE", "", "key of that client certificate (PEM)")
}

// Routing are the settings that say where workspaces are served. The API
// (URLs it returns), the provisioner (the IDE's base path) and router-sync
// (the routes) must agree, so they bind them in one place.
type Routing struct {
	Mode      string
	PublicURL string
	Domain    string
}

// Routing binds the routing settings.
func (s *Set) Routing(r *Routing) {
	s.String(&r.Mode, "routing-mode", "BERTH_ROUTING_MODE", "path", "path (/workspace-<name>/) or subdomain (<name>.<domain>)")
	s.String(&r.PublicURL, "public-url", "BERTH_PUBLIC_URL", "http://localhost:8000", "base URL users reach workspaces at (Traefik)")
	s.String(&r.Domain, "domain", "BERTH_DOMAIN", "", "parent domain in subdomain mode (default: host of the public URL)")
}

// Lifecycle is the reaper's policy. The API validates per-workspace idle
// timeouts against the same bounds, so both bind them here.
type Lifecycle struct {
	IdleTimeout    time.Duration
	IdleTimeoutMin time.Duration
	IdleTimeoutMax time.Duration
	IdleWarning    time.Duration
	Retention      time.Duration
	ArchiveRetry   time.Duration
}

// Lifecycle binds the lifecycle policy settings.
func (s *Set) Lifecycle(l *Lifecycle) {
	s.Duration(&l.IdleTimeout, "idle-timeout", "BERTH_IDLE_TIMEOUT", 24*time.Hour, "stop a running workspace after this long without activity (0 = never)")
	s.IdleBounds(l)
	s.Duration(&l.IdleWarning, "idle-warning", "BERTH_IDLE_WARNING", time.Hour, "append an idle_warning this long before an idle stop (0 = no warning)")
	s.Duration(&l.Retention, "retention", "BERTH_RETENTION", 7*24*time.Hour, "archive, then delete, a workspace stopped this long (0 = keep forever)")
	s.Duration(&l.ArchiveRetry, "archive-retry", "BERTH_ARCHIVE_RETRY", time.Hour, "wait this long after a failed archive before trying again")
}

// IdleBounds binds only the bounds of per-workspace idle timeouts (the API
// validates overrides against them).
func (s *Set) IdleBounds(l *Lifecycle) {
	s.Duration(&l.IdleTimeoutMin, "idle-timeout-min", "BERTH_IDLE_TIMEOUT_MIN", 15*time.Minute, "shortest per-workspace idle timeout allowed")
	s.Duration(&l.IdleTimeoutMax, "idle-timeout-max", "BERTH_IDLE_TIMEOUT_MAX", 7*24*time.Hour, "longest per-workspace idle timeout allowed")
}

// Validate reports settings that contradict each other.
func (l Lifecycle) Validate() error {
	for key, d := range map[string]time.Duration{"BERTH_IDLE_TIMEOUT": l.IdleTimeout, "BERTH_IDLE_TIMEOUT_MIN": l.IdleTimeoutMin,
		"BERTH_IDLE_TIMEOUT_MAX": l.IdleTimeoutMax, "BERTH_IDLE_WARNING": l.IdleWarning, "BERTH_RETENTION": l.Retention, "BERTH_ARCHIVE_RETRY": l.ArchiveRetry} {
		if d < 0 {
			return fmt.Errorf("bad configuration: %s=%s: must not be negative", key, d)
		}
	}
	if l.IdleTimeoutMin > l.IdleTimeoutMax {
		return fmt.Errorf("bad configuration: BERTH_IDLE_TIMEOUT_MIN=%s is above BERTH_IDLE_TIMEOUT_MAX=%s", l.IdleTimeoutMin, l.IdleTimeoutMax)
	}
	if l.IdleTimeout != 0 && (l.IdleTimeout < l.IdleTimeoutMin || l.IdleTimeout > l.IdleTimeoutMax) {
		return fmt.Errorf("bad configuration: BERTH_IDLE_TIMEOUT=%s is outside [%s, %s]", l.IdleTimeout, l.IdleTimeoutMin, l.IdleTimeoutMax)
	}
	return nil
}

// ResourceMax is the largest workspace admins may define. The API validates
// requests against it and the provisioner checks again before it creates a
// container (the log may hold events no API validated), so both bind it.
type ResourceMax struct {
	MemoryBytes int64
	CPUs        float64
	Pids        int
	// DiskBytes bounds a workspace's writable layer plus home volume; a
	// workspace defined before disk limits gets it as its limit.
	DiskBytes int64
}

// ResourceMax binds the resource bounds.
func (s *Set) ResourceMax(r *ResourceMax) {
	s.Bytes(&r.MemoryBytes, "max-memory", "BERTH_MAX_MEMORY", 8<<30, "largest memory limit admins may set")
	s.Float(&r.CPUs, "max-cpus", "BERTH_MAX_CPUS", 4, "largest CPU limit admins may set")
	s.Int(&r.Pids, "max-pids", "BERTH_MAX_PIDS", 4096, "largest process limit admins may set")
	s.Bytes(&r.DiskBytes, "max-disk", "BERTH_MAX_DISK", 20<<30, "largest disk limit (writable layer plus home volume) admins may set; also the limit of workspaces defined before disk limits")
}
