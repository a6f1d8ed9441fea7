package policy

import (
	"testing"
	"time"

	"github.com/berthdev/berth/pkg/events"
)

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

type testCase struct {
	name     string
	s        Settings
	ws       events.Workspace
	activity time.Time
	now      time.Time
	want     Action
	reason   string
}

func TestDecide(t *testing.T) {
	s := Settings{IdleTimeout: 24 * time.Hour, MinIdleTimeout: time.Hour, MaxIdleTimeout: 72 * time.Hour,
		Warning: time.Hour, Retention: 7 * 24 * time.Hour, ArchiveRetry: time.Hour}
	h := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Hour))) }
	running := events.Workspace{Status: events.StatusRunning, StatusSince: t0}
	stopped := events.Workspace{Status: events.StatusStopped, StatusSince: t0}
	archived := events.Workspace{Status: events.StatusArchived, StatusSince: t0, Archive: &events.ArchiveInfo{Path: "a", SizeBytes: 1, SHA256: "ab"}}
	with := func(ws events.Workspace, f func(*events.Workspace)) events.Workspace { f(&ws); return ws }
	held := func(ws events.Workspace) events.Workspace {
		return with(ws, func(w *events.Workspace) { w.Hold = true })
	}
	cases := []testCase{
		{"running, started recently", s, running, time.Time{}, h(1), None, ""},
		{"running, active an hour ago", s, running, h(30), h(31), None, ""},
		{"running, idle just under the timeout minus warning", s, running, time.Time{}, h(22.9), None, ""},
		{"running, inside the warning window", s, running, time.Time{}, h(23), Warn, ReasonIdle},
		{"running, already warned for this idle period", s, with(running, func(w *events.Workspace) {
			w.IdleWarning = &events.IdleWarning{IdleSince: t0, StopAt: h(24)}
		}), time.Time{}, h(23.5), None, ""},
		{"running, warned for an older idle period, active since", s, with(running, func(w *events.Workspace) {
			w.IdleWarning = &events.IdleWarning{IdleSince: t0, StopAt: h(24)}
		}), h(10), h(33.5), Warn, ReasonIdle},
		{"running, idle exactly the timeout", s, running, time.Time{}, h(24), Stop, ReasonIdle},
		{"running, idle since last activity", s, running, h(5), h(29), Stop, ReasonIdle},
		{"running, activity older than the start is ignored", s, with(running, func(w *events.Workspace) { w.StatusSince = h(10) }), h(-100), h(20), None, ""},
		{"running, warning disabled", with0(s, func(s *Settings) { s.Warning = 0 }), running, time.Time{}, h(23.5), None, ""},
		{"running, short timeout: no warning in its first half", s, with(running, func(w *events.Workspace) { w.IdleTimeoutSeconds = 3600 }), time.Time{}, h(0.4), None, ""},
		{"running, short timeout: warning in its second half", s, with(running, func(w *events.Workspace) { w.IdleTimeoutSeconds = 3600 }), time.Time{}, h(0.5), Warn, ReasonIdle},
		{"running, override 2h", s, with(running, func(w *events.Workspace) { w.IdleTimeoutSeconds = 7200 }), time.Time{}, h(2), Stop, ReasonIdle},
		{"running, override below the minimum is clamped up", s, with(running, func(w *events.Workspace) { w.IdleTimeoutSeconds = 60 }), time.Time{}, h(0.9), Warn, ReasonIdle},
		{"running, override above the maximum is clamped down", s, with(running, func(w *events.Workspace) { w.IdleTimeoutSeconds = 1000 * 3600 }), time.Time{}, h(72), Stop, ReasonIdle},
		{"running, override past what a duration holds is the maximum, not a wrapped 1h", s, with(running, func(w *events.Workspace) { w.IdleTimeoutSeconds = 36028797018967568 }), time.Time{}, h(2), None, ""},
		{"running, override past what a duration holds, idle the maximum", s, with(running, func(w *events.Workspace) { w.IdleTimeoutSeconds = 36028797018967568 }), time.Time{}, h(72), Stop, ReasonIdle},
		{"running, idle timeout off", with0(s, func(s *Settings) { s.IdleTimeout = 0 }), running, time.Time{}, h(1000), None, ""},
		{"running, held", s, held(running), time.Time{}, h(1000), None, ""},
		{"stopped, within retention", s, stopped, time.Time{}, h(167), None, ""},
		{"stopped, past retention", s, stopped, time.Time{}, h(168), Archive, ReasonRetention},
		{"stopped, past retention, held", s, held(stopped), time.Time{}, h(1000), None, ""},
		{"stopped, retention off", with0(s, func(s *Settings) { s.Retention = 0 }), stopped, time.Time{}, h(1000), None, ""},
		{"stopped after a failed archive, before the retry", s, with(stopped, func(w *events.Workspace) { w.LastError = "read-only" }), time.Time{}, h(0.5), None, ""},
		{"stopped after a failed archive, retry due", s, with(stopped, func(w *events.Workspace) { w.LastError = "read-only" }), time.Time{}, h(1), Archive, ReasonRetention},
		{"archived and verified", s, archived, time.Time{}, h(0), Delete, ReasonRetention},
		{"archived, held", s, held(archived), time.Time{}, h(0), None, ""},
		{"archived without a checksum is never deleted", s, with(archived, func(w *events.Workspace) { w.Archive = &events.ArchiveInfo{Path: "a", SizeBytes: 1} }), time.Time{}, h(1000), None, ""},
		{"archived, retention off", with0(s, func(s *Settings) { s.Retention = 0 }), archived, time.Time{}, h(1000), None, ""},
	}
	for _, st := range events.Statuses() {
		switch st {
		case events.StatusRunning, events.StatusStopped, events.StatusArchived:
			continue
		}
		cases = append(cases, testCase{"status " + string(st) + " is never reaped", s, events.Workspace{Status: st, StatusSince: t0}, time.Time{}, h(10000), None, ""})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(c.s, c.ws, c.activity, c.now)
			if d.Action != c.want || d.Reason != c.reason {
				t.Fatalf("got %s/%q, want %s/%q", d.Action, d.Reason, c.want, c.reason)
			}
			if d.Action == Warn || d.Action == Stop {
				if d.StopAt.Sub(d.IdleSince) != c.s.IdleTimeoutFor(c.ws) {
					t.Errorf("stop at %s for idle since %s", d.StopAt, d.IdleSince)
				}
			}
		})
	}
}

func with0(s Settings, f func(*Settings)) Settings { f(&s); return s }
