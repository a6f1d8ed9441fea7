package events

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

const wsID = "0b7e3c2a-5d4f-4f7e-9a51-2f0c6f1d8e21"

func envOf(t *testing.T, p Payload, seq uint64) Envelope {
	t.Helper()
	e, err := New(wsID, p, Meta{Source: "test", Actor: "user:alice", Reason: "test"}, goldenTime.Add(time.Duration(seq)*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e.Sequence = seq
	return e
}

// legal is the expected lifecycle, written out independently of the
// transitions map so a change to either shows up here.
var legal = map[Status]map[Type]Status{
	StatusNone:      {TypeCreated: StatusCreated},
	StatusCreated:   {TypeUpdated: StatusCreated, TypeLifecycleChanged: StatusCreated, TypeStartRequested: StatusStarting, TypeDeleteRequested: StatusDeleting, TypePurgeRequested: StatusDeleting},
	StatusStarting:  {TypeLifecycleChanged: StatusStarting, TypeAddressed: StatusStarting, TypeRunning: StatusRunning, TypeStopRequested: StatusStopping, TypeFailed: StatusError, TypeDeleteRequested: StatusDeleting, TypePurgeRequested: StatusDeleting},
	StatusRunning:   {TypeLifecycleChanged: StatusRunning, TypeIdleWarning: StatusRunning, TypeDiskWarning: StatusRunning, TypeRunning: StatusRunning, TypeStopRequested: StatusStopping, TypeStopped: StatusStopped, TypeFailed: StatusError, TypeDeleteRequested: StatusDeleting, TypePurgeRequested: StatusDeleting},
	StatusStopping:  {TypeLifecycleChanged: StatusStopping, TypeStopped: StatusStopped, TypeStartRequested: StatusStarting, TypeFailed: StatusError, TypeDeleteRequested: StatusDeleting, TypePurgeRequested: StatusDeleting},
	StatusStopped:   {TypeUpdated: StatusStopped, TypeLifecycleChanged: StatusStopped, TypeStartRequested: StatusStarting, TypeArchiveRequested: StatusArchiving, TypeDeleteRequested: StatusDeleting, TypePurgeRequested: StatusDeleting},
	StatusError:     {TypeUpdated: StatusError, TypeLifecycleChanged: StatusError, TypeStartRequested: StatusStarting, TypeStopRequested: StatusStopping, TypeArchiveRequested: StatusArchiving, TypeDeleteRequested: StatusDeleting, TypePurgeRequested: StatusDeleting},
	StatusArchiving: {TypeLifecycleChanged: StatusArchiving, TypeArchived: StatusArchived, TypeArchiveFailed: StatusStopped},
	StatusArchived:  {TypeLifecycleChanged: StatusArchived, TypeStartRequested: StatusStarting, TypeDeleteRequested: StatusDeleting, TypePurgeRequested: StatusDeleting},
	StatusDeleting:  {TypeLifecycleChanged: StatusDeleting, TypeDeleted: StatusDeleted, TypeFailed: StatusError},
	StatusDeleted:   {TypeRestoreRequested: StatusRestoring, TypePurgeRequested: StatusDeleting},
	StatusRestoring: {TypeLifecycleChanged: StatusRestoring, TypeRestored: StatusStopped, TypeRestoreFailed: StatusDeleted},
}

// TestApplyEveryPair applies every workspace event type in every status and
// checks it against the table above: legal pairs reach the listed status,
// all others fail with an IllegalTransitionError and leave the state as it was.
func TestApplyEveryPair(t *testing.T) {
	if len(legal) != len(Statuses()) {
		t.Fatalf("table covers %d statuses, lifecycle has %d", len(legal), len(Statuses()))
	}
	for from, accepts := range legal {
		for typ, p := range samples() {
			if !strings.HasPrefix(string(typ), "berth.workspace.") {
				continue
			}
			t.Run(string(from)+"/"+string(typ), func(t *testing.T) {
				start := Workspace{}
				if from != StatusNone {
					start = Workspace{ID: wsID, Name: "alice", Owner: "alice", Status: from, Version: 7}
				}
				if from == StatusDeleted && typ == TypePurgeRequested {
					start.VolumeKept = true // the purge a deleted workspace takes: of what it kept
				}
				got, err := Apply(start, envOf(t, p, 8))
				want, ok := accepts[typ]
				if !ok {
					var ite *IllegalTransitionError
					if !errors.As(err, &ite) {
						t.Fatalf("want IllegalTransitionError, got %v", err)
					}
					if ite.From != from || ite.Type != typ {
						t.Errorf("error names %s/%s", ite.From, ite.Type)
					}
					if got.Status != from || got.Version != 7*boolToU64(from != StatusNone) {
						t.Errorf("state changed on rejected event: %+v", got)
					}
					return
				}
				if err != nil {
					t.Fatalf("legal transition rejected: %v", err)
				}
				if got.Status != want || got.Version != 8 {
					t.Errorf("got status %s version %d, want %s version 8", got.Status, got.Version, want)
				}
			})
		}
	}
}

func boolToU64(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func TestFoldLifecycle(t *testing.T) {
	desc := "new description"
	evs := []Envelope{
		envOf(t, &Created{Name: "alice", Image: "img:1", Owner: "alice", Projects: []string{"p1"}, Resources: Resources{MemoryBytes: 1, MilliCPUs: 2, Pids: 3}}, 1),
		envOf(t, &Updated{Description: &desc}, 2),
		envOf(t, &StartRequested{}, 3),
		envOf(t, &Running{ContainerID: "c1", Host: "h", IP: "10.0.0.2", Port: 8080}, 4),
	}
	ws, err := Fold(evs)
	if err != nil {
		t.Fatal(err)
	}
	if ws.Status != StatusRunning || ws.Desired != DesiredRunning || ws.Endpoint == nil || ws.Endpoint.IP != "10.0.0.2" {
		t.Fatalf("unexpected state %+v", ws)
	}
	if ws.Description != desc || ws.Image != "img:1" || ws.Projects[0] != "p1" || ws.Version != 4 {
		t.Fatalf("definition not folded: %+v", ws)
	}
	if !ws.CreatedAt.Equal(evs[0].Time) || !ws.UpdatedAt.Equal(evs[3].Time) {
		t.Fatalf("timestamps must come from events: %+v", ws)
	}

	ws, err = Apply(ws, envOf(t, &Failed{Code: "oom", Message: "out of memory", Retryable: true}, 5))
	if err != nil || ws.Status != StatusError || ws.Failure == nil || ws.Endpoint != nil {
		t.Fatalf("failed not folded: %+v %v", ws, err)
	}
	ws, err = Apply(ws, envOf(t, &StartRequested{}, 6))
	if err != nil || ws.Failure != nil || ws.Endpoint != nil {
		t.Fatalf("retry must clear the failure and have no address yet: %+v %v", ws, err)
	}
	ws, err = Apply(ws, envOf(t, &Addressed{ContainerID: "c2", Host: "h", IP: "10.0.0.3", Port: 8080}, 7))
	if err != nil || ws.Status != StatusStarting || ws.Endpoint == nil || ws.Endpoint.IP != "10.0.0.3" {
		t.Fatalf("addressed: still starting, with the new address: %+v %v", ws, err)
	}

	other := envOf(t, &StopRequested{}, 8)
	other.Subject = "another"
	if _, err := Apply(ws, other); !errors.Is(err, ErrWrongSubject) {
		t.Fatalf("want ErrWrongSubject, got %v", err)
	}
	if _, err := Fold(append(evs, envOf(t, &Created{Name: "again"}, 5))); err == nil {
		t.Fatal("Fold accepted a second created event")
	}
}

func TestProjection(t *testing.T) {
	p := NewProjection()
	apply := func(e Envelope) {
		t.Helper()
		if _, err := p.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
	apply(envOf(t, &Created{Name: "alice", Owner: "alice"}, 1))
	apply(envOf(t, &StartRequested{}, 2))
	// A redelivery of an older event is ignored, not an anomaly.
	if changed, err := p.Apply(envOf(t, &StartRequested{}, 2)); changed || err != nil {
		t.Fatalf("redelivery: changed=%v err=%v", changed, err)
	}
	if ws, ok := p.WorkspaceByName("alice"); !ok || ws.Status != StatusStarting {
		t.Fatalf("by name: %+v %v", ws, ok)
	}
	// An illegal event is recorded, not applied.
	if _, err := p.Apply(envOf(t, &Archived{}, 3)); err == nil {
		t.Fatal("illegal event applied")
	}
	if a := p.Anomalies(); len(a) != 1 || a[0].Sequence != 3 {
		t.Fatalf("anomalies: %+v", a)
	}
	// ... but passed over: the next append expects the subject's real last
	// sequence, so a foreign message cannot wedge the workspace.
	if ws, _ := p.Workspace(wsID); ws.Version != 3 || ws.Status != StatusStarting {
		t.Fatalf("after a rejected event: version %d status %s, want 3 and starting", ws.Version, ws.Status)
	}
	apply(envOf(t, &DeleteRequested{}, 4))
	apply(envOf(t, &Deleted{}, 5))
	if _, ok := p.WorkspaceByName("alice"); ok {
		t.Fatal("deleted workspace still owns its name")
	}

	cat := func(pl Payload, seq uint64) Envelope {
		e := envOf(t, pl, seq)
		e.Subject = CatalogSubject
		return e
	}
	apply(cat(&ImageAdded{Ref: "a:1"}, 6))
	apply(cat(&ImageAdded{Ref: "b:1"}, 7))
	apply(cat(&ImageRemoved{Ref: "a:1"}, 8))
	imgs, version := p.Catalog()
	if len(imgs) != 1 || imgs[0].Ref != "b:1" || version != 8 || p.LastSequence() != 8 {
		t.Fatalf("catalog %+v version %d last %d", imgs, version, p.LastSequence())
	}
	if _, err := p.Apply(cat(&StartRequested{}, 9)); err == nil {
		t.Fatal("workspace event accepted on the catalog subject")
	}

	// Launchable and the default: only for images in the catalog; the
	// default goes with its image.
	yes, no := true, false
	apply(cat(&ImageUpdated{Ref: "b:1", Launchable: &yes}, 10))
	apply(cat(&ImageUpdated{Ref: "b:1", Default: &yes}, 11))
	if img, _ := p.Image("b:1"); !img.Launchable || p.DefaultImage() != "b:1" {
		t.Fatalf("launchable %v default %q", img.Launchable, p.DefaultImage())
	}
	for i, pl := range []Payload{&ImageUpdated{Ref: "a:1", Launchable: &yes}, &ImageUpdated{Ref: "a:1", Default: &no}} {
		if _, err := p.Apply(cat(pl, uint64(12+i))); !errors.Is(err, errNotInCatalog) {
			t.Fatalf("%T of an image not in the catalog: %v", pl, err)
		}
	}
	if _, version := p.Catalog(); version != 13 || p.DefaultImage() != "b:1" {
		t.Fatalf("after rejected catalog events: version %d default %q", version, p.DefaultImage())
	}
	apply(cat(&ImageUpdated{Ref: "b:1", Default: &no}, 14))
	if img, _ := p.Image("b:1"); !img.Launchable || p.DefaultImage() != "" {
		t.Fatalf("default: false: launchable %v default %q", img.Launchable, p.DefaultImage())
	}
	apply(cat(&ImageUpdated{Ref: "b:1", Default: &yes}, 15))
	apply(cat(&ImageRemoved{Ref: "b:1"}, 16))
	if p.DefaultImage() != "" {
		t.Fatalf("the removed default is still the default: %q", p.DefaultImage())
	}
}

// TestProjectionWaitFor: a consumer handed message n waits until the
// follower has handled it (applied, rejected or undecodable alike).
func TestProjectionWaitFor(t *testing.T) {
	p := NewProjection()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.WaitFor(ctx, 2) }()
	if _, err := p.Apply(envOf(t, &Created{Name: "alice", Owner: "alice"}, 1)); err != nil {
		t.Fatal(err)
	}
	p.Advance(1)
	select {
	case err := <-done:
		t.Fatalf("returned before message 2 was followed: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	p.Skip(WorkspaceSubject(wsID, TypeRunning), 2, errors.New("not an event"))
	p.Advance(2)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ws, _ := p.Workspace(wsID); ws.Version != 2 {
		t.Fatalf("undecodable message not passed over: version %d", ws.Version)
	}
	short, stop := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer stop()
	if err := p.WaitFor(short, 3); err == nil {
		t.Fatal("WaitFor returned without message 3")
	}
}

func TestSubjects(t *testing.T) {
	if got := WorkspaceIDFromSubject(WorkspaceSubject(wsID, TypeRunning)); got != wsID {
		t.Fatalf("round trip: %q", got)
	}
	if got := WorkspaceIDFromSubject(CatalogSubject); got != "" {
		t.Fatalf("catalog subject parsed as workspace %q", got)
	}
}

// TestLifecycleFields: the reaper's inputs follow the log: status_since
// moves only on a status change, warnings end with the running period, a
// new run forgets the last archive (its data will diverge) and the last
// archive error, and restore brings a deleted workspace back stopped.
func TestLifecycleFields(t *testing.T) {
	hold, reason, idle := true, "exam", int64(7200)
	evs := []Envelope{
		envOf(t, &Created{Name: "w", Owner: "alice"}, 1),
		envOf(t, &StartRequested{}, 2),
		envOf(t, &Running{IP: "10.0.0.2", Port: 8080}, 3),
		envOf(t, &LifecycleChanged{Hold: &hold, HoldReason: &reason, IdleTimeoutSeconds: &idle}, 4),
		envOf(t, &Running{IP: "10.0.0.3", Port: 8080}, 5),
		envOf(t, &IdleWarning{IdleSince: goldenTime, StopAt: goldenTime.Add(time.Hour)}, 6),
	}
	ws, err := Fold(evs)
	if err != nil {
		t.Fatal(err)
	}
	if !ws.StatusSince.Equal(evs[2].Time) {
		t.Errorf("status_since %s, want the first running event's time", ws.StatusSince)
	}
	if !ws.Hold || ws.HoldReason != "exam" || ws.IdleTimeoutSeconds != 7200 || ws.IdleWarning == nil {
		t.Fatalf("lifecycle fields %+v", ws)
	}
	more := []Envelope{
		envOf(t, &StopRequested{}, 7),
		envOf(t, &Stopped{}, 8),
		envOf(t, &ArchiveRequested{}, 9),
		envOf(t, &ArchiveFailed{Message: "read-only"}, 10),
	}
	for _, e := range more {
		if ws, err = Apply(ws, e); err != nil {
			t.Fatal(err)
		}
	}
	if ws.IdleWarning != nil || ws.LastError != "read-only" || ws.Status != StatusStopped || !ws.StatusSince.Equal(more[3].Time) {
		t.Fatalf("after a failed archive: %+v", ws)
	}
	for _, e := range []Envelope{envOf(t, &ArchiveRequested{}, 11), envOf(t, &Archived{Path: "p", SizeBytes: 1, SHA256: "s"}, 12)} {
		if ws, err = Apply(ws, e); err != nil {
			t.Fatal(err)
		}
	}
	if ws.LastError != "" || ws.Archive == nil {
		t.Fatalf("after archiving: %+v", ws)
	}
	restarted, err := Apply(ws, envOf(t, &StartRequested{}, 13))
	if err != nil || restarted.Archive != nil {
		t.Fatalf("a new run must forget the archive: %+v %v", restarted, err)
	}
	for _, e := range []Envelope{envOf(t, &DeleteRequested{}, 13), envOf(t, &Deleted{}, 14), envOf(t, &RestoreRequested{}, 15), envOf(t, &Restored{Path: "p", SHA256: "s", Files: 3}, 16)} {
		if ws, err = Apply(ws, e); err != nil {
			t.Fatal(err)
		}
	}
	if ws.Status != StatusStopped || ws.Desired != DesiredStopped || ws.Archive == nil {
		t.Fatalf("after restore: %+v", ws)
	}
}

// TestDeletedTakesOnlyAPurgeOfWhatItKept: a deleted workspace accepts a
// purge only while its volume is kept, stays gone meanwhile (no name, no
// start), and a failed purge leaves it deleted, not startable. Only
// purge_requested purges: delete_requested's old purge flag is history.
func TestDeletedTakesOnlyAPurgeOfWhatItKept(t *testing.T) {
	deleted := Workspace{ID: wsID, Name: "alice", Owner: "alice", Status: StatusDeleted, Version: 7, VolumeKept: true}
	for name, c := range map[string]struct {
		ws Workspace
		p  Payload
	}{
		"delete again":             {deleted, &DeleteRequested{}},
		"delete with the old flag": {deleted, &DeleteRequested{Purge: true}},
		"nothing kept":             {func() Workspace { w := deleted; w.VolumeKept = false; return w }(), &PurgeRequested{}},
	} {
		_, err := Apply(c.ws, envOf(t, c.p, 8))
		var ite *IllegalTransitionError
		if !errors.As(err, &ite) {
			t.Errorf("%s: want an illegal transition, got %v", name, err)
		}
	}
	got, err := Apply(deleted, envOf(t, &PurgeRequested{}, 8))
	if err != nil || got.Status != StatusDeleting || !got.Purge || !got.Gone() {
		t.Fatalf("purge of a kept volume: %+v %v", got, err)
	}
	failed, err := Apply(got, envOf(t, &Failed{Code: "deadline_exceeded", Message: "no provisioner"}, 9))
	if err != nil || failed.Status != StatusDeleted || !failed.VolumeKept || failed.LastError == "" {
		t.Fatalf("a failed purge must leave the workspace deleted, volume kept: %+v %v", failed, err)
	}
	if _, ok := Next(failed.Status, TypeStartRequested); ok {
		t.Fatal("a deleted workspace took a start after a failed purge")
	}
	done, err := Apply(got, envOf(t, &Deleted{VolumeRemoved: true}, 9))
	if err != nil || done.VolumeKept || done.Gone() != true {
		t.Fatalf("after the purge: %+v %v", done, err)
	}
	// The old flag on a live workspace deletes without purging.
	running := Workspace{ID: wsID, Name: "alice", Owner: "alice", Status: StatusRunning, Version: 7}
	if d, _ := Apply(running, envOf(t, &DeleteRequested{Purge: true}, 8)); d.Purge {
		t.Fatal("delete_requested's old purge flag was honoured")
	}
}

// TestVolumeKept: which deletes leave the home volume, for logs written
// before deleted said so (the provisioner removed it exactly on a purge or
// with a verified archive) and after.
func TestVolumeKept(t *testing.T) {
	base := Workspace{ID: wsID, Name: "alice", Owner: "alice", Status: StatusDeleting, Version: 7}
	archived := base
	archived.Archive = &ArchiveInfo{Path: "a", SizeBytes: 1, SHA256: "ab"}
	purged := base
	purged.Purge = true
	for name, c := range map[string]struct {
		ws   Workspace
		p    *Deleted
		kept bool
	}{
		"plain delete":            {base, &Deleted{}, true},
		"old log, purge":          {purged, &Deleted{}, false},
		"old log, archived":       {archived, &Deleted{}, false},
		"new log, removed":        {base, &Deleted{VolumeRemoved: true}, false},
		"archived on the way out": {base, &Deleted{VolumeRemoved: true, Archive: &ArchiveInfo{Path: "b", SizeBytes: 2, SHA256: "cd"}}, false},
	} {
		got, err := Apply(c.ws, envOf(t, c.p, 8))
		if err != nil || got.VolumeKept != c.kept {
			t.Errorf("%s: volume kept %v (%v), want %v", name, got.VolumeKept, err, c.kept)
		}
		if c.p.Archive != nil && (got.Archive == nil || got.Archive.SHA256 != "cd") {
			t.Errorf("%s: the archive made on the way out is not recorded", name)
		}
	}
}

// TestCauseFollowsTheLastRequest: the provisioner's observation answers
// the last request, and carries its correlation and trace.
func TestCauseFollowsTheLastRequest(t *testing.T) {
	ws := Workspace{ID: wsID, Name: "alice", Owner: "alice", Status: StatusStopped, Version: 7}
	start := envOf(t, &StartRequested{}, 8)
	start.CorrelationID, start.TraceParent = "req-1", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ws, err := Apply(ws, start)
	if err != nil {
		t.Fatal(err)
	}
	ws, err = Apply(ws, envOf(t, &Running{ContainerID: "c"}, 9))
	if err != nil {
		t.Fatal(err)
	}
	m := ws.Cause.Follow(Meta{Source: "p", Actor: "service:provisioner"})
	if m.CausationID != start.ID || m.CorrelationID != "req-1" || m.TraceParent != start.TraceParent {
		t.Fatalf("observation meta %+v does not follow the request %s", m, start.ID)
	}
	stop := envOf(t, &StopRequested{}, 10) // no correlation id of its own
	ws, _ = Apply(ws, stop)
	if m := ws.Cause.Follow(Meta{}); m.CausationID != stop.ID || m.CorrelationID != stop.ID {
		t.Fatalf("a request without a correlation id correlates by its id: %+v", m)
	}
	if m := (*Cause)(nil).Follow(Meta{CorrelationID: "own"}); m.CorrelationID != "own" {
		t.Fatal("no cause must leave the meta alone")
	}
}

// TestDiskWarningLastsOneRun: the warning is on the running workspace
// (re-observations keep it) and gone once it leaves running, so a new run
// is warned, and given its grace, afresh.
func TestDiskWarningLastsOneRun(t *testing.T) {
	ws, err := Fold([]Envelope{
		envOf(t, &Created{Name: "w", Owner: "alice"}, 1),
		envOf(t, &StartRequested{}, 2),
		envOf(t, &Running{IP: "10.0.0.2", Port: 8080}, 3),
		envOf(t, &DiskWarning{UsedBytes: 11, LimitBytes: 10, StopAfter: goldenTime}, 4),
		envOf(t, &Running{IP: "10.0.0.3", Port: 8080}, 5),
	})
	if err != nil {
		t.Fatal(err)
	}
	if w := ws.DiskWarning; w == nil || w.UsedBytes != 11 || w.LimitBytes != 10 || !w.StopAfter.Equal(goldenTime) {
		t.Fatalf("disk warning %+v", ws.DiskWarning)
	}
	failed, err := Apply(ws, envOf(t, &Failed{Code: "disk_quota_exceeded", Message: "over", Retryable: true}, 6))
	if err != nil || failed.DiskWarning != nil || failed.Failure.Code != "disk_quota_exceeded" {
		t.Fatalf("after the stop: %+v %v", failed, err)
	}
}

// TestNamesAreDNSLabels: the fold refuses a workspace whose name is not a
// DNS label, whoever appended it: the name becomes a host, a path and
// part of Traefik's rules. The projection records it as an anomaly and
// knows no such workspace.
func TestNamesAreDNSLabels(t *testing.T) {
	for _, name := range []string{"a`) || PathPrefix(`/", "", "-a", "a-", "A", "a.b", "a b", "a_b", strings.Repeat("a", 64), "ä"} {
		_, err := Apply(Workspace{}, envOf(t, &Created{Name: name, Owner: "alice"}, 1))
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q: %v", name, err)
		}
		p := NewProjection()
		if _, err := p.Apply(envOf(t, &Created{Name: name, Owner: "alice"}, 1)); err == nil {
			t.Errorf("%q: the projection took it", name)
		}
		if _, ok := p.Workspace(wsID); ok {
			t.Errorf("%q: the projection knows the workspace", name)
		}
		if len(p.Anomalies()) != 1 {
			t.Errorf("%q: %d anomalies", name, len(p.Anomalies()))
		}
	}
	for _, name := range []string{"a", "alice", "alice--cs101", "0", strings.Repeat("a", 63)} {
		if _, err := Apply(Workspace{}, envOf(t, &Created{Name: name, Owner: "alice"}, 1)); err != nil {
			t.Errorf("%q refused: %v", name, err)
		}
	}
}
