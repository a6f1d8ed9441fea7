package app_test

import (
	"testing"
	"time"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/services/provisioner/internal/app"
)

func TestDecideDisk(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	const limit = 100 << 20
	running := func(w *events.DiskWarning) events.Workspace {
		return events.Workspace{Status: events.StatusRunning, DiskWarning: w}
	}
	warned := func(stopAfter time.Time) *events.DiskWarning {
		return &events.DiskWarning{UsedBytes: limit, LimitBytes: limit, StopAfter: stopAfter}
	}
	mib := func(writable, home int64) app.DiskUse { return app.DiskUse{Writable: writable << 20, Home: home << 20} }
	cases := []struct {
		name  string
		ws    events.Workspace
		use   app.DiskUse
		limit int64
		want  app.DiskVerdict
	}{
		{"well under", running(nil), mib(10, 20), limit, app.DiskOK},
		{"just under the warning line", running(nil), app.DiskUse{Home: limit*app.WarnAt/100 - 1}, limit, app.DiskOK},
		{"at the warning line", running(nil), app.DiskUse{Home: limit * app.WarnAt / 100}, limit, app.DiskWarn},
		{"writable layer and home add up", running(nil), mib(50, 45), limit, app.DiskWarn},
		{"over, never warned: warned first", running(nil), mib(0, 500), limit, app.DiskWarn},
		{"over, warned, grace not over", running(warned(now.Add(time.Second))), mib(0, 500), limit, app.DiskOK},
		{"over, warned, grace over", running(warned(now)), mib(0, 500), limit, app.DiskStop},
		{"over by the writable layer alone", running(warned(now.Add(-time.Minute))), mib(101, 0), limit, app.DiskStop},
		{"warned, back under the limit", running(warned(now.Add(-time.Minute))), mib(0, 95), limit, app.DiskOK},
		{"warned, exactly at the limit", running(warned(now.Add(-time.Minute))), app.DiskUse{Home: limit}, limit, app.DiskOK},
		{"not running", events.Workspace{Status: events.StatusStopped}, mib(0, 500), limit, app.DiskOK},
		{"starting", events.Workspace{Status: events.StatusStarting}, mib(0, 500), limit, app.DiskOK},
		{"no limit", running(nil), mib(0, 500), 0, app.DiskOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := app.DecideDisk(c.ws, c.use, c.limit, now); got != c.want {
				t.Fatalf("DecideDisk = %s, want %s", got, c.want)
			}
		})
	}
}

func TestDiskLimit(t *testing.T) {
	if got := app.DiskLimit(events.Resources{DiskBytes: 5 << 30}, 20<<30); got != 5<<30 {
		t.Fatalf("own limit: %d", got)
	}
	if got := app.DiskLimit(events.Resources{}, 20<<30); got != 20<<30 {
		t.Fatalf("a workspace defined before disk limits gets BERTH_MAX_DISK, got %d", got)
	}
}
