package events

import (
	"strings"
	"testing"
)

// TestProfileCheck: every field of an image profile is checked, with a
// stable code per kind of problem; the ready entries of docs/images.md
// pass.
func TestProfileCheck(t *testing.T) {
	good := map[string]ImageProfile{
		"none":        {},
		"code-server": {Port: 8080, Health: "/healthz", Command: []string{"--bind-addr", "0.0.0.0:8080", "--auth", "none", "."}, Activity: "http:/healthz#lastHeartbeat", Home: "/home/coder"},
		"jupyter":     {Port: 8888, Health: "/api", Activity: "http:/api/status#last_activity", Busy: "http:{base}/api/kernels?no_track_activity=1#execution_state=busy", Prefix: "keep", User: "1000:100", Home: "/home/jovyan", Env: map[string]string{"JUPYTER_TOKEN": ""}},
		"terminal":    {Health: "tcp", Activity: "file:/home/coder/.local/share/code-server/heartbeat", Prefix: "strip"},
		"traffic":     {Activity: "traffic", Resources: &Resources{MemoryBytes: 1 << 30}},
	}
	for name, p := range good {
		if problems := p.Check(); len(problems) > 0 {
			t.Errorf("%s: %v", name, problems)
		}
	}
	bad := map[string]struct {
		p    ImageProfile
		code string
	}{
		"port":             {ImageProfile{Port: 70000}, "invalid_port"},
		"health no slash":  {ImageProfile{Health: "healthz"}, "invalid_health"},
		"health space":     {ImageProfile{Health: "/a b"}, "invalid_health"},
		"root":             {ImageProfile{User: "0"}, "invalid_user"},
		"root group":       {ImageProfile{User: "0:0"}, "invalid_user"},
		"named user":       {ImageProfile{User: "coder"}, "invalid_user"},
		"home relative":    {ImageProfile{Home: "home/coder"}, "invalid_home"},
		"home over etc":    {ImageProfile{Home: "/etc"}, "invalid_home"},
		"home in etc":      {ImageProfile{Home: "/etc/ssl"}, "invalid_home"},
		"home in usr":      {ImageProfile{Home: "/usr/local"}, "invalid_home"},
		"root group only":  {ImageProfile{User: "1000:0"}, "invalid_user"},
		"home unclean":     {ImageProfile{Home: "/home/../etc"}, "invalid_home"},
		"env reserved":     {ImageProfile{Env: map[string]string{"BERTH_BASE_PATH": "/"}}, "reserved_env"},
		"env home":         {ImageProfile{Env: map[string]string{"HOME": "/root"}}, "reserved_env"},
		"env name":         {ImageProfile{Env: map[string]string{"A-B": "x"}}, "invalid_env"},
		"activity kind":    {ImageProfile{Activity: "ping"}, "invalid_activity"},
		"activity file":    {ImageProfile{Activity: "file:relative"}, "invalid_activity"},
		"activity http":    {ImageProfile{Activity: "http:/status"}, "invalid_activity"},
		"activity traffic": {ImageProfile{Activity: "traffic:x"}, "invalid_activity"},
		"prefix":           {ImageProfile{Prefix: "rewrite"}, "invalid_prefix"},
		"busy no value":    {ImageProfile{Busy: "http:/api/kernels#execution_state"}, "invalid_busy"},
		"busy kind":        {ImageProfile{Busy: "file:/tmp/busy"}, "invalid_busy"},
		"busy no field":    {ImageProfile{Busy: "http:/api/kernels#=busy"}, "invalid_busy"},
		"busy value space": {ImageProfile{Busy: "http:/api/kernels#state=a b"}, "invalid_busy"},
		"busy base inside": {ImageProfile{Busy: "http:/x{base}/k#state=busy"}, "invalid_busy"},
		"command NUL":      {ImageProfile{Command: []string{"a\x00b"}}, "invalid_command"},
		"command long":     {ImageProfile{Command: make([]string, 65)}, "invalid_command"},
	}
	for name, c := range bad {
		problems := c.p.Check()
		if len(problems) == 0 || problems[0].Code != c.code || !strings.HasPrefix(problems[0].Field, "profile.") {
			t.Errorf("%s: %v, want code %s", name, problems, c.code)
		}
	}
}

// TestProfileActivity: the activity spec tells the provisioner what to
// read.
func TestProfileActivity(t *testing.T) {
	if f := (ImageProfile{}).ActivityFile("/def"); f != "/def" {
		t.Errorf("no activity: file %q, want the default", f)
	}
	if f := (ImageProfile{Activity: "file:/x"}).ActivityFile("/def"); f != "/x" {
		t.Errorf("file: %q", f)
	}
	if f := (ImageProfile{Activity: "traffic"}).ActivityFile("/def"); f != "" {
		t.Errorf("traffic: file %q, want none", f)
	}
	p, field, ok := ImageProfile{Activity: "http:/api/status#last_activity"}.HTTPActivity("/workspace-a")
	if !ok || p != "/api/status" || field != "last_activity" {
		t.Errorf("http: %q %q %v", p, field, ok)
	}
}

// TestProfileBusy: the busy probe's path (under the base path), field and
// value.
func TestProfileBusy(t *testing.T) {
	p, field, value, ok := ImageProfile{Busy: "http:{base}/api/kernels#execution_state=busy"}.HTTPBusy("/workspace-a")
	if !ok || p != "/workspace-a/api/kernels" || field != "execution_state" || value != "busy" {
		t.Errorf("busy probe: %q %q %q %v", p, field, value, ok)
	}
	if _, _, _, ok := (ImageProfile{}).HTTPBusy("/workspace-a"); ok {
		t.Error("a profile without a busy probe has one")
	}
}

// TestBasePathInProbes: {base} at the start of a health or activity path
// is the workspace's base path (path mode) or nothing (subdomain mode);
// anywhere else, or without a path after it, the profile is refused.
func TestBasePathInProbes(t *testing.T) {
	jupyter := ImageProfile{Health: "{base}/api/status", Activity: "http:{base}/api/status#last_activity", Prefix: "keep"}
	if problems := jupyter.Check(); len(problems) != 0 {
		t.Fatalf("Jupyter's profile refused: %+v", problems)
	}
	for base, want := range map[string]string{"/workspace-alice": "/workspace-alice/api/status", "": "/api/status"} {
		if got := jupyter.HealthPath(base); got != want {
			t.Errorf("health under %q: %q, want %q", base, got, want)
		}
		if got, _, _ := jupyter.HTTPActivity(base); got != want {
			t.Errorf("activity under %q: %q, want %q", base, got, want)
		}
	}
	if got := (ImageProfile{Health: "tcp"}).HealthPath("/workspace-a"); got != "tcp" {
		t.Errorf("tcp: %q", got)
	}
	for _, bad := range []ImageProfile{{Health: "{base}"}, {Health: "/a/{base}/b"}, {Health: "{base}{base}/x"}, {Health: "{base}x"},
		{Activity: "http:{base}#f"}, {Activity: "http:/x/{base}#f"}, {Activity: "http:{base}x#f"}} {
		if len(bad.Check()) == 0 {
			t.Errorf("%+v accepted", bad)
		}
	}
}
