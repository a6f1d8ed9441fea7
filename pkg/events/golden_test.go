package events

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

var goldenTime = time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)

// samples holds one representative payload per event type; the golden files
// pin their JSON so that a change to the contract is a visible diff.
func samples() map[Type]Payload {
	res := Resources{MemoryBytes: 2 << 30, MilliCPUs: 500, Pids: 512}
	desc, img, projects := "pairing session", "berth/workspace-demo:latest", []string{"course-101"}
	quotaWorkspaces := 10
	hold, holdReason, idle := true, "course CS-101 until grades are final", int64(4*3600)
	return map[Type]Payload{
		TypeCreated:          &Created{Name: "alice", Description: "alice's workspace", Image: img, Projects: projects, Owner: "alice", Resources: res},
		TypeUpdated:          &Updated{Description: &desc, Image: &img, Projects: &projects, Resources: &res},
		TypeStartRequested:   &StartRequested{},
		TypeRunning:          &Running{ContainerID: "3f1c9e", Host: "berth-ws-alice", IP: "172.18.0.5", Port: 8080},
		TypeAddressed:        &Addressed{ContainerID: "3f1c9e", Host: "berth-ws-alice", IP: "172.18.0.5", Port: 8080},
		TypeStopRequested:    &StopRequested{},
		TypeStopped:          &Stopped{ExitCode: 0},
		TypeFailed:           &Failed{Code: "image_missing", Message: "image berth/workspace-demo:latest is not on this host; run make images", Retryable: true},
		TypeArchiveRequested: &ArchiveRequested{},
		TypeArchived:         &Archived{Path: "archives/alice-2026-11-23.tar.gz", SizeBytes: 4096, SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
		TypeArchiveFailed:    &ArchiveFailed{Message: "archive dir is read-only"},
		TypeDeleteRequested:  &DeleteRequested{Archive: true},
		TypePurgeRequested:   &PurgeRequested{},
		TypeDeleted:          &Deleted{VolumeRemoved: true, Archive: &ArchiveInfo{Path: "archives/0b7e3c2a-5d4f-4f7e-9a51-2f0c6f1d8e21/44.tar.gz", SizeBytes: 4096, SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},
		TypeLifecycleChanged: &LifecycleChanged{Hold: &hold, HoldReason: &holdReason, IdleTimeoutSeconds: &idle},
		TypeIdleWarning:      &IdleWarning{IdleSince: goldenTime.Add(-23 * time.Hour), StopAt: goldenTime.Add(time.Hour)},
		TypeDiskWarning:      &DiskWarning{UsedBytes: 11 << 30, LimitBytes: 10 << 30, StopAfter: goldenTime.Add(time.Minute)},
		TypeRestoreRequested: &RestoreRequested{},
		TypeRestored:         &Restored{Path: "archives/0b7e3c2a-5d4f-4f7e-9a51-2f0c6f1d8e21/41.tar.gz", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Files: 12},
		TypeRestoreFailed:    &RestoreFailed{Message: "archive checksum does not match the archived event"},
		TypeImageAdded:       &ImageAdded{Ref: "berth/workspace-demo:latest", Description: "demo IDE", CapAdd: []string{}},
		TypeImageRemoved:     &ImageRemoved{Ref: "berth/workspace-demo:latest"},
		TypeImageUpdated:     &ImageUpdated{Ref: "berth/workspace-jupyter:latest", Launchable: &hold, Default: &hold},
		TypeQuotaSet:         &QuotaSet{Subject: "alice", Workspaces: &quotaWorkspaces, Running: nil},
		TypeSystemRegistered: &SystemRegistered{Name: "lms", Types: []string{"berth.intake.workspace.create", "berth.intake.workspace.start"}, Owners: []string{"*"}},
		TypeSystemRevoked:    &SystemRevoked{Name: "lms"},
	}
}

func goldenEnvelope(t *testing.T, p Payload) Envelope {
	t.Helper()
	subject := "0b7e3c2a-5d4f-4f7e-9a51-2f0c6f1d8e21"
	switch {
	case strings.HasPrefix(string(p.EventType()), "berth.catalog."):
		subject = CatalogSubject
	case strings.HasPrefix(string(p.EventType()), "berth.users."):
		subject = UsersSubject
	}
	e, err := New(subject, p, Meta{Source: "berth/api", Actor: "user:admin", Reason: "user request", CorrelationID: "req-42", CausationID: "5c1f0a9e-2b7d-4c4e-9f1a-0d3e8b6a7c21",
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, goldenTime)
	if err != nil {
		t.Fatal(err)
	}
	e.ID = "7d444840-9dc0-11d1-b245-5ffdce74fad2"
	return e
}

func TestGoldenEnvelopes(t *testing.T) {
	s := samples()
	if len(s) != len(Types()) {
		t.Fatalf("samples cover %d types, registry has %d", len(s), len(Types()))
	}
	for typ, p := range s {
		t.Run(string(typ), func(t *testing.T) {
			got, err := json.MarshalIndent(goldenEnvelope(t, p), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", string(typ)+".json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run go test -update once to create it): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s changed; if intended, bump its schema version and run go test -update\n got: %s\nwant: %s", typ, got, want)
			}
			// The golden file must decode back to the same payload.
			dec, err := Decode(want)
			if err != nil {
				t.Fatalf("decode golden: %v", err)
			}
			back, err := dec.Payload()
			if err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(back)
			b, _ := json.Marshal(p)
			if !bytes.Equal(a, b) {
				t.Errorf("round trip: got %s want %s", a, b)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	valid := goldenEnvelope(t, &StartRequested{})
	cases := map[string]func(e *Envelope){
		"wrong specversion": func(e *Envelope) { e.SpecVersion = "0.3" },
		"missing id":        func(e *Envelope) { e.ID = "" },
		"missing source":    func(e *Envelope) { e.Source = "" },
		"missing subject":   func(e *Envelope) { e.Subject = "" },
		"missing time":      func(e *Envelope) { e.Time = time.Time{} },
		"missing actor":     func(e *Envelope) { e.Actor = "" },
		"unknown type":      func(e *Envelope) { e.Type = "berth.workspace.teleported" },
		"future schema":     func(e *Envelope) { e.SchemaVersion = 99 },
		"zero schema":       func(e *Envelope) { e.SchemaVersion = 0 },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			e := valid
			mutate(&e)
			body, _ := json.Marshal(e)
			if _, err := Decode(body); err == nil {
				t.Fatal("Decode accepted an invalid envelope")
			}
		})
	}
	if _, err := Decode([]byte("{not json")); err == nil {
		t.Fatal("Decode accepted malformed JSON")
	}
	bad := goldenEnvelope(t, &Running{})
	bad.Data = json.RawMessage(`{"port":"eighty"}`)
	if _, err := bad.Payload(); err == nil {
		t.Fatal("Payload accepted data of the wrong shape")
	}
}
