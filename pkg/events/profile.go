package events

import (
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ImageProfile is how a catalog image's IDE runs: what differs between
// code-server, JupyterLab, a terminal. Zero fields take the provisioner's
// defaults (port 8080, health /healthz, home /home/coder, the heartbeat
// file), so an image added without a profile runs as before.
type ImageProfile struct {
	// Port the IDE listens on inside the container.
	Port int `json:"port,omitempty"`
	// Health is an HTTP path answering 200 when the IDE is ready, or
	// "tcp" (the port accepts connections). It may start with BasePath,
	// for an app that serves under its base path (prefix keep).
	Health string `json:"health,omitempty"`
	// Command replaces the image's CMD (the arguments of its entrypoint).
	Command []string `json:"command,omitempty"`
	// Env is added to the container's environment (BERTH_* is Berth's).
	Env map[string]string `json:"env,omitempty"`
	// User runs the IDE as this numeric uid[:gid] (never 0).
	User string `json:"user,omitempty"`
	// Home is where the home volume is mounted (project folders go under
	// <home>/project/).
	Home string `json:"home,omitempty"`
	// Activity is how use is measured besides requests through Traefik:
	// "file:<absolute path>" (a heartbeat file's modification time),
	// "http:<path>#<field>" (a JSON endpoint's time field, e.g.
	// code-server's /healthz#lastHeartbeat or Jupyter's
	// /api/status#last_activity), or "traffic" (requests only).
	Activity string `json:"activity,omitempty"`
	// Busy counts the workspace as in use while its app says it is
	// working, without input or output: "http:<path>#<field>=<value>" is
	// true while the JSON at path (an object, or a list of them) has field
	// equal to value. Jupyter's
	// http:{base}/api/kernels?no_track_activity=1#execution_state=busy keeps
	// a workspace whose cell runs for hours from going idle (the query keeps
	// the probe itself from counting as Jupyter's API use).
	Busy string `json:"busy,omitempty"`
	// Prefix in path mode: "strip" (the app is served at /, the default)
	// or "keep" (the app serves under BERTH_BASE_PATH itself, like
	// Jupyter's --ServerApp.base_url).
	Prefix string `json:"prefix,omitempty"`
	// Resources are the defaults of workspaces of this image.
	Resources *Resources `json:"resources,omitempty"`
}

// BasePath stands, at the start of a health or activity path, for the
// workspace's base path (BERTH_BASE_PATH: /workspace-<name> in path mode,
// nothing in subdomain mode), so an app that serves under it (Jupyter's
// base_url) can be probed where it answers.
const BasePath = "{base}"

// withBase replaces a leading BasePath of p by base.
func withBase(p, base string) string {
	if rest, ok := strings.CutPrefix(p, BasePath); ok {
		return base + rest
	}
	return p
}

// probePath reports whether p is an HTTP path, after a BasePath if it
// starts with one, holding none of the characters forbid.
func probePath(p, forbid string) bool {
	rest := strings.TrimPrefix(p, BasePath)
	return strings.HasPrefix(rest, "/") && !strings.ContainsAny(rest, forbid)
}

// HealthPath is the health check's path for a workspace whose base path is
// base ("tcp" and "" as they are).
func (p ImageProfile) HealthPath(base string) string { return withBase(p.Health, base) }

// ProfileProblem is one field of a profile that cannot be used.
type ProfileProblem struct {
	Field, Code, Message string
}

var (
	envName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	numericUser = regexp.MustCompile(`^[0-9]{1,10}(:[0-9]{1,10})?$`)
	jsonField   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]{0,63}$`)
	busyValue   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// systemDirs may not hold the home volume: mounting over them would hide
// the image's own files.
var systemDirs = []string{"/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root", "/run", "/sbin", "/sys", "/tmp", "/usr", "/var"}

// Check lists every problem of the profile (none: it can be used). The API
// checks it before a catalog entry is added, and the provisioner again
// before it creates a container.
func (p ImageProfile) Check() []ProfileProblem {
	var out []ProfileProblem
	bad := func(field, code, format string, args ...any) {
		out = append(out, ProfileProblem{Field: "profile." + field, Code: code, Message: fmt.Sprintf(format, args...)})
	}
	if p.Port < 0 || p.Port > 65535 {
		bad("port", "invalid_port", "port %d: want 1 to 65535", p.Port)
	}
	if p.Health != "" && p.Health != "tcp" && (!probePath(p.Health, " \t\r\n{}") || len(p.Health) > 256) {
		bad("health", "invalid_health", "health %q: want an HTTP path such as /healthz or {base}/api/status, or tcp", p.Health)
	}
	if len(p.Command) > 64 {
		bad("command", "invalid_command", "at most 64 arguments")
	}
	for i, a := range p.Command {
		if len(a) > 4096 || strings.ContainsRune(a, 0) {
			bad(fmt.Sprintf("command[%d]", i), "invalid_command", "an argument is at most 4096 bytes, without NUL")
		}
	}
	if len(p.Env) > 64 {
		bad("env", "invalid_env", "at most 64 variables")
	}
	for _, k := range slices.Sorted(maps.Keys(p.Env)) {
		switch {
		case !envName.MatchString(k):
			bad("env."+k, "invalid_env", "%q is not a variable name", k)
		case strings.HasPrefix(k, "BERTH_") || k == "HOME":
			bad("env."+k, "reserved_env", "%s is set by Berth", k)
		case len(p.Env[k]) > 4096 || strings.ContainsRune(p.Env[k], 0):
			bad("env."+k, "invalid_env", "a value is at most 4096 bytes, without NUL")
		}
	}
	if p.User != "" && !nonRootUser(p.User) {
		bad("user", "invalid_user", "user %q: want a numeric uid[:gid], neither 0 (no root user or group in a workspace)", p.User)
	}
	if p.Home != "" && (!path.IsAbs(p.Home) || path.Clean(p.Home) != p.Home || underSystemDir(p.Home) || len(p.Home) > 256) {
		bad("home", "invalid_home", "home %q: want a clean absolute path outside the system's folders, e.g. /home/coder", p.Home)
	}
	if p.Activity != "" {
		if problem := checkActivity(p.Activity); problem != "" {
			bad("activity", "invalid_activity", "activity %q: %s", p.Activity, problem)
		}
	}
	if p.Busy != "" {
		if _, _, _, ok := splitBusy(p.Busy); !ok {
			bad("busy", "invalid_busy", "busy %q: want http:<path>#<json field>=<value>, e.g. http:{base}/api/kernels?no_track_activity=1#execution_state=busy", p.Busy)
		}
	}
	if p.Prefix != "" && p.Prefix != "strip" && p.Prefix != "keep" {
		bad("prefix", "invalid_prefix", "prefix %q: want strip or keep", p.Prefix)
	}
	return out
}

func nonRootUser(u string) bool {
	if !numericUser.MatchString(u) {
		return false
	}
	uid, gid, hasGroup := strings.Cut(u, ":")
	n, err := strconv.ParseUint(uid, 10, 32)
	if err != nil || n == 0 {
		return false
	}
	if hasGroup {
		g, err := strconv.ParseUint(gid, 10, 32)
		return err == nil && g != 0
	}
	return true
}

// underSystemDir: the folder is a system folder or inside one (/etc/ssl,
// /usr/local); / itself only as itself.
func underSystemDir(dir string) bool {
	for _, d := range systemDirs {
		if dir == d || (d != "/" && strings.HasPrefix(dir, d+"/")) {
			return true
		}
	}
	return false
}

func checkActivity(a string) string {
	kind, rest, _ := strings.Cut(a, ":")
	switch kind {
	case "traffic":
		if rest != "" {
			return "traffic takes nothing after it"
		}
	case "file":
		if !path.IsAbs(rest) || path.Clean(rest) != rest {
			return "want file:<clean absolute path>"
		}
	case "http":
		p, field, ok := strings.Cut(rest, "#")
		if !ok || !probePath(p, " \t\r\n#{}") || !jsonField.MatchString(field) {
			return "want http:<path>#<json field>, e.g. http:/api/status#last_activity or http:{base}/api/status#last_activity"
		}
	default:
		return "want file:<path>, http:<path>#<field> or traffic"
	}
	return ""
}

// HTTPActivity splits an "http:<path>#<field>" activity, the path of a
// workspace whose base path is base.
func (p ImageProfile) HTTPActivity(base string) (urlPath, field string, ok bool) {
	rest, ok := strings.CutPrefix(p.Activity, "http:")
	if !ok {
		return "", "", false
	}
	urlPath, field, ok = strings.Cut(rest, "#")
	return withBase(urlPath, base), field, ok
}

// HTTPBusy splits a "busy" probe, the path of a workspace whose base
// path is base.
func (p ImageProfile) HTTPBusy(base string) (urlPath, field, value string, ok bool) {
	urlPath, field, value, ok = splitBusy(p.Busy)
	return withBase(urlPath, base), field, value, ok
}

func splitBusy(b string) (urlPath, field, value string, ok bool) {
	rest, ok := strings.CutPrefix(b, "http:")
	if !ok {
		return "", "", "", false
	}
	urlPath, cond, ok := strings.Cut(rest, "#")
	if !ok {
		return "", "", "", false
	}
	field, value, ok = strings.Cut(cond, "=")
	if !ok || len(b) > 256 || !probePath(urlPath, " \t\r\n#{}") || !jsonField.MatchString(field) || !busyValue.MatchString(value) {
		return "", "", "", false
	}
	return urlPath, field, value, true
}

// ActivityFile is the heartbeat file of a "file:" activity, def when the
// profile names no activity, "" when use is measured otherwise.
func (p ImageProfile) ActivityFile(def string) string {
	if p.Activity == "" {
		return def
	}
	f, _ := strings.CutPrefix(p.Activity, "file:")
	if f == p.Activity {
		return ""
	}
	return f
}

// KeepsPrefix: in path mode, the app serves under its base path itself.
func (p ImageProfile) KeepsPrefix() bool { return p.Prefix == "keep" }
