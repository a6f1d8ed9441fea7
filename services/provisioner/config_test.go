package main

import (
	"io"
	"strings"
	"testing"
)

func TestParseRejectsBadSettings(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string
	}{
		"restart policy": {[]string{"--restart-policy", "sometimes"}, "BERTH_RESTART_POLICY"},
		"routing mode":   {[]string{"--routing-mode", "vhost"}, "routing mode"},
		"public url":     {[]string{"--public-url", "localhost:8000"}, "public url"},
		"duration":       {[]string{"--health-timeout", "soon"}, "health-timeout"},
		"heartbeat file": {[]string{"--heartbeat-file", "relative/beat"}, "BERTH_HEARTBEAT_FILE"},
		"archive dir":    {[]string{"--archive-dir", ""}, "BERTH_ARCHIVE_DIR"},
		"installation":   {[]string{"--installation", "Not An Id"}, "BERTH_INSTALLATION"},
		"stop drain":     {[]string{"--stop-drain", "2h"}, "BERTH_STOP_DRAIN"},
		"deadline":       {[]string{"--transition-deadline", "30s"}, "BERTH_TRANSITION_DEADLINE"},
		"redrive":        {[]string{"--redrive-after", "0s"}, "BERTH_REDRIVE_AFTER"},
		"max memory":     {[]string{"--max-memory", "lots"}, "max-memory"},
		"runtime":        {[]string{"--runtime", "kubernetes"}, "BERTH_RUNTIME"},
		"swarm attach":   {[]string{"--runtime", "swarm"}, "BERTH_SWARM_ATTACH"},
		"placement":      {[]string{"--swarm-placement-timeout", "0s"}, "BERTH_SWARM_PLACEMENT_TIMEOUT"},
		"min free disk":  {[]string{"--min-free-disk", "plenty"}, "BERTH_MIN_FREE_DISK"},
		"min free pct":   {[]string{"--min-free-disk", "120%"}, "BERTH_MIN_FREE_DISK"},
		"disk interval":  {[]string{"--disk-interval", "-1s"}, "BERTH_DISK_INTERVAL"},
		"log files":      {[]string{"--workspace-log-max-files", "0"}, "BERTH_WORKSPACE_LOG_MAX_FILES"},
		"max disk":       {[]string{"--max-disk", "0"}, "BERTH_MAX_DISK"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := parse(c.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want an error naming %q, got %v", c.want, err)
			}
		})
	}
	def, err := parse(nil, io.Discard)
	if err != nil {
		t.Fatalf("defaults must be valid: %v", err)
	}
	if def.Max.DiskBytes != 20<<30 || def.MinFreeDisk.String() != "2GiB" || def.DiskInterval <= 0 {
		t.Fatalf("disk defaults: max %d, min free %s, interval %s", def.Max.DiskBytes, def.MinFreeDisk, def.DiskInterval)
	}
	c, err := parse([]string{"--runtime", "swarm", "--swarm-attach", " berth-provisioner, ,berth-traefik "}, io.Discard)
	if err != nil || strings.Join(c.SwarmAttach, "|") != "berth-provisioner|berth-traefik" {
		t.Fatalf("swarm attach list: %q, %v", c.SwarmAttach, err)
	}
}
