package app_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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

type diskMeter map[string]app.DiskUse

func (m diskMeter) DiskUsage(context.Context) (map[string]app.DiskUse, error) { return m, nil }

// meterErr answers with its usage and its error.
type meterErr struct {
	use map[string]app.DiskUse
	err error
}

func (m meterErr) DiskUsage(context.Context) (map[string]app.DiskUse, error) { return m.use, m.err }

// diskLog records appends; conflict makes every append lose a race.
type diskLog struct {
	conflict bool
	appended []events.Type
}

func (l *diskLog) Append(_ context.Context, e events.Envelope, _ uint64) (uint64, error) {
	if l.conflict {
		return 0, fmt.Errorf("append: %w", app.ErrConflict)
	}
	l.appended = append(l.appended, e.Type)
	return 1, nil
}

type stopper struct{ stopped []string }

func (s *stopper) EnsureStopped(_ context.Context, id string) (int, error) {
	s.stopped = append(s.stopped, id)
	return 0, nil
}

type lockAll struct{ busy bool }

func (l lockAll) Handle(context.Context, string, uint64, bool) error { return nil }
func (l lockAll) TryExclusive(string) (func(), bool)                 { return func() {}, !l.busy }

// TestDiskWatchStopsOnlyWhatItRecorded: the container is stopped only
// after the failure is in the log; a lost race (a newer request) or a
// handler holding the workspace leaves it alone, and a workspace the
// engine did not measure (another node's) is never judged.
func TestDiskWatchStopsOnlyWhatItRecorded(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	over := events.Workspace{ID: "over", Name: "over", Status: events.StatusRunning, Version: 7, Resources: events.Resources{DiskBytes: 10 << 20},
		DiskWarning: &events.DiskWarning{StopAfter: now.Add(-time.Second)}}
	fresh := events.Workspace{ID: "fresh", Name: "fresh", Status: events.StatusRunning, Version: 3}
	unmeasured := events.Workspace{ID: "elsewhere", Name: "elsewhere", Status: events.StatusRunning, Version: 4, Resources: events.Resources{DiskBytes: 1}}
	meter := diskMeter{"over": {Home: 20 << 20}, "fresh": {Writable: 19 << 20}}
	for name, c := range map[string]struct {
		conflict, busy bool
		types          []events.Type
		stopped        []string
	}{
		"recorded":    {types: []events.Type{events.TypeFailed, events.TypeDiskWarning}, stopped: []string{"over"}},
		"lost a race": {conflict: true},
		"busy":        {busy: true},
	} {
		t.Run(name, func(t *testing.T) {
			l, s := &diskLog{conflict: c.conflict}, &stopper{}
			d := &app.DiskWatch{Log: l, Projection: fakeWorkspaces{over, fresh, unmeasured}, Meter: meter, Engine: s, Driver: lockAll{busy: c.busy},
				Logger: slog.New(slog.DiscardHandler), Max: 20 << 20, Now: func() time.Time { return now }}
			if err := d.Check(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(l.appended, c.types) || !slices.Equal(s.stopped, c.stopped) {
				t.Fatalf("appended %v, stopped %v; want %v, %v", l.appended, s.stopped, c.types, c.stopped)
			}
		})
	}
}

// TestDiskWatchActsOnAPartialMeasurement: while the engine cannot size the
// home volumes (another disk-usage call runs), the writable layers and the
// last home sizes still stop a workspace over its limit; a measurement
// that failed outright judges nothing.
func TestDiskWatchActsOnAPartialMeasurement(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	over := events.Workspace{ID: "over", Name: "over", Status: events.StatusRunning, Version: 7, Resources: events.Resources{DiskBytes: 10 << 20},
		DiskWarning: &events.DiskWarning{StopAfter: now.Add(-time.Second)}}
	use := map[string]app.DiskUse{"over": {Writable: 8 << 20, Home: 4 << 20}}
	for name, c := range map[string]struct {
		meter   app.DiskMeter
		failed  bool
		stopped []string
	}{
		"stale homes":    {meter: meterErr{use, fmt.Errorf("%w: volume disk usage: already running", app.ErrHomeStale)}, stopped: []string{"over"}},
		"nothing at all": {meter: meterErr{nil, errors.New("list workspace containers: engine gone")}, failed: true},
	} {
		t.Run(name, func(t *testing.T) {
			l, s := &diskLog{}, &stopper{}
			d := &app.DiskWatch{Log: l, Projection: fakeWorkspaces{over}, Meter: c.meter, Engine: s, Driver: lockAll{},
				Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }}
			err := d.Check(context.Background())
			if (err != nil) != c.failed || !slices.Equal(s.stopped, c.stopped) {
				t.Fatalf("err %v, stopped %v; want failed %v, stopped %v", err, s.stopped, c.failed, c.stopped)
			}
		})
	}
}
