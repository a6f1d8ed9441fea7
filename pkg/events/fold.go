package events

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Status is a workspace's observed lifecycle state.
type Status string

const (
	StatusNone      Status = ""
	StatusCreated   Status = "created"   // defined, never started
	StatusStarting  Status = "starting"  // start requested, not yet running
	StatusRunning   Status = "running"   // container answers its health check
	StatusStopping  Status = "stopping"  // stop requested
	StatusStopped   Status = "stopped"   // container exists, not running
	StatusError     Status = "error"     // could not reach desired state (retryable)
	StatusArchiving Status = "archiving" // archive requested
	StatusArchived  Status = "archived"  // home volume archived and verified
	StatusDeleting  Status = "deleting"  // delete requested
	StatusDeleted   Status = "deleted"   // container gone (volume too if archived or purged)
	StatusRestoring Status = "restoring" // restore from the archive requested
)

// Desired is the state the last intent asked for.
type Desired string

const (
	DesiredStopped  Desired = "stopped"
	DesiredRunning  Desired = "running"
	DesiredArchived Desired = "archived"
	DesiredDeleted  Desired = "deleted"
)

// transitions is the lifecycle table: for each status, the event types it
// accepts and the status they lead to. Anything not listed is illegal.
var transitions = map[Status]map[Type]Status{
	StatusNone: {
		TypeCreated: StatusCreated,
	},
	StatusCreated: {
		TypeUpdated:          StatusCreated,
		TypeLifecycleChanged: StatusCreated,
		TypeStartRequested:   StatusStarting,
		TypeDeleteRequested:  StatusDeleting,
		TypePurgeRequested:   StatusDeleting,
	},
	StatusStarting: {
		TypeLifecycleChanged: StatusStarting,
		TypeAddressed:        StatusStarting,
		TypeRunning:          StatusRunning,
		TypeStopRequested:    StatusStopping,
		TypeFailed:           StatusError,
		TypeDeleteRequested:  StatusDeleting,
		TypePurgeRequested:   StatusDeleting,
	},
	StatusRunning: {
		TypeLifecycleChanged: StatusRunning,
		TypeIdleWarning:      StatusRunning,
		TypeDiskWarning:      StatusRunning,
		TypeRunning:          StatusRunning, // re-observed (adopted after a crash, new address)
		TypeStopRequested:    StatusStopping,
		TypeStopped:          StatusStopped, // container exited on its own
		TypeFailed:           StatusError,
		TypeDeleteRequested:  StatusDeleting,
		TypePurgeRequested:   StatusDeleting,
	},
	StatusStopping: {
		TypeLifecycleChanged: StatusStopping,
		TypeStopped:          StatusStopped,
		TypeStartRequested:   StatusStarting, // launch while a stop is in flight
		TypeFailed:           StatusError,
		TypeDeleteRequested:  StatusDeleting,
		TypePurgeRequested:   StatusDeleting,
	},
	StatusStopped: {
		TypeUpdated:          StatusStopped,
		TypeLifecycleChanged: StatusStopped,
		TypeStartRequested:   StatusStarting,
		TypeArchiveRequested: StatusArchiving,
		TypeDeleteRequested:  StatusDeleting,
		TypePurgeRequested:   StatusDeleting,
	},
	StatusError: {
		TypeUpdated:          StatusError,
		TypeLifecycleChanged: StatusError,
		TypeStartRequested:   StatusStarting, // retry
		TypeStopRequested:    StatusStopping,
		TypeArchiveRequested: StatusArchiving,
		TypeDeleteRequested:  StatusDeleting,
		TypePurgeRequested:   StatusDeleting,
	},
	StatusArchiving: {
		TypeLifecycleChanged: StatusArchiving,
		TypeArchived:         StatusArchived,
		TypeArchiveFailed:    StatusStopped, // data untouched, failure in the log
	},
	StatusArchived: {
		TypeLifecycleChanged: StatusArchived,
		TypeStartRequested:   StatusStarting, // the volume is still there until deleted
		TypeDeleteRequested:  StatusDeleting,
		TypePurgeRequested:   StatusDeleting,
	},
	StatusDeleting: {
		TypeLifecycleChanged: StatusDeleting,
		TypeDeleted:          StatusDeleted,
		TypeFailed:           StatusError,
	},
	StatusDeleted: {
		TypeRestoreRequested: StatusRestoring, // only with a verified archive
		TypePurgeRequested:   StatusDeleting,  // only while the delete kept the volume
	},
	StatusRestoring: {
		TypeLifecycleChanged: StatusRestoring,
		TypeRestored:         StatusStopped,
		TypeRestoreFailed:    StatusDeleted, // archive untouched, failure in the log
	},
}

// Statuses lists every status of the lifecycle (StatusNone included).
func Statuses() []Status {
	out := make([]Status, 0, len(transitions))
	for s := range transitions {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Next returns the status event type t leads to from s, and whether the
// transition is legal.
func Next(s Status, t Type) (Status, bool) {
	next, ok := transitions[s][t]
	return next, ok
}

// IllegalTransitionError is returned by Apply for an event the workspace's
// current status does not accept.
type IllegalTransitionError struct {
	From Status
	Type Type
}

func (e *IllegalTransitionError) Error() string {
	from := e.From
	if from == StatusNone {
		from = "(none)"
	}
	return fmt.Sprintf("illegal transition: %s in status %s", e.Type, from)
}

// ErrWrongSubject is returned by Apply for an event of another workspace.
var ErrWrongSubject = errors.New("event belongs to another workspace")

// Endpoint is where a running workspace's container answers.
type Endpoint struct {
	ContainerID string `json:"container_id"`
	Host        string `json:"host"`
	IP          string `json:"ip"`
	Port        int    `json:"port"`
}

// ArchiveInfo describes the verified archive of a workspace's home volume.
type ArchiveInfo struct {
	Path      string `json:"path"`
	SizeBytes int64  `json:"size_bytes"`
	SHA256    string `json:"sha256"`
}

// Workspace is the state of one workspace: the fold of its events.
type Workspace struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Image       string       `json:"image"`
	Projects    []string     `json:"projects"`
	Owner       string       `json:"owner"`
	Resources   Resources    `json:"resources"`
	Status      Status       `json:"status"`
	Desired     Desired      `json:"desired"`
	Reason      string       `json:"reason,omitempty"`
	Failure     *Failed      `json:"failure,omitempty"`
	Endpoint    *Endpoint    `json:"endpoint,omitempty"`
	Archive     *ArchiveInfo `json:"archive,omitempty"`
	Purge       bool         `json:"purge,omitempty"`
	// PurgingDeleted: a deleted workspace's kept volume is being purged;
	// the workspace stays gone (no name, no quota, no start), and a failed
	// purge leaves it deleted.
	PurgingDeleted bool `json:"purging_deleted,omitempty"`
	// ArchiveFirst: the pending delete archives the home volume first.
	ArchiveFirst bool `json:"archive_first,omitempty"`
	// VolumeKept: deleted, and the home volume is still on the engine (a
	// plain delete keeps it; a purge removes it).
	VolumeKept bool `json:"volume_kept,omitempty"`
	// Lifecycle policy (see LifecycleChanged) and the reaper's inputs.
	Hold               bool         `json:"hold"`
	HoldReason         string       `json:"hold_reason,omitempty"`
	IdleTimeoutSeconds int64        `json:"idle_timeout_seconds,omitempty"`
	IdleWarning        *IdleWarning `json:"idle_warning,omitempty"`
	// DiskWarning is the current run's disk warning (cleared when the
	// workspace leaves running).
	DiskWarning *DiskWarning `json:"disk_warning,omitempty"`
	// LastError is the message of the last failed archive or restore,
	// cleared when one succeeds.
	LastError   string    `json:"last_error,omitempty"`
	StatusSince time.Time `json:"status_since"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// Version is the stream sequence of the last event applied: the expected
	// last subject sequence for the next append.
	Version uint64 `json:"version"`
	// Cause is the last request (start, stop, archive, delete, purge,
	// restore): what the provisioner's next observation answers. Internal:
	// not part of the API's body.
	Cause *Cause `json:"-"`
}

// Cause identifies the request an observation answers, so the audit log
// links them (causationid) and one correlation id and trace run from the
// user's request to the container that came of it.
type Cause struct {
	EventID       string
	CorrelationID string
	TraceParent   string
	TraceState    string
	// Type and Time: what was asked and when (launch latency is measured
	// from a start request's time).
	Type Type
	Time time.Time
}

// requests are the event types that ask the provisioner for something.
var requests = map[Type]bool{TypeStartRequested: true, TypeStopRequested: true, TypeArchiveRequested: true,
	TypeDeleteRequested: true, TypePurgeRequested: true, TypeRestoreRequested: true}

// Follow fills m's correlation, causation and trace from the cause (a
// request without a correlation id of its own correlates by its event id).
// A nil cause leaves m as it is.
func (c *Cause) Follow(m Meta) Meta {
	if c == nil {
		return m
	}
	m.CausationID = c.EventID
	m.CorrelationID = cmp.Or(c.CorrelationID, c.EventID)
	m.TraceParent, m.TraceState = c.TraceParent, c.TraceState
	return m
}

// Apply folds one event into a workspace's state. It is pure: the result
// depends only on its arguments (times come from the event), so replaying a
// log always yields the same state. Illegal transitions return an
// *IllegalTransitionError and the state unchanged.
func Apply(ws Workspace, e Envelope) (Workspace, error) {
	id := e.Subject
	if ws.ID != "" && ws.ID != id {
		return ws, fmt.Errorf("%w: %s applied to %s", ErrWrongSubject, id, ws.ID)
	}
	next, ok := Next(ws.Status, e.Type)
	if !ok {
		return ws, &IllegalTransitionError{From: ws.Status, Type: e.Type}
	}
	p, err := e.Payload()
	if err != nil {
		return ws, err
	}
	out := ws
	out.Projects = slices.Clone(ws.Projects)
	out.Status = next
	out.Reason = e.Reason
	out.UpdatedAt = e.Time
	out.Version = e.Sequence
	if next != StatusError {
		out.Failure = nil
	}
	if next != ws.Status {
		out.StatusSince = e.Time
	}
	if next != StatusRunning {
		out.IdleWarning = nil
		out.DiskWarning = nil
	}
	if requests[e.Type] {
		out.Cause = &Cause{EventID: e.ID, CorrelationID: e.CorrelationID, TraceParent: e.TraceParent, TraceState: e.TraceState, Type: e.Type, Time: e.Time}
	}
	switch p := p.(type) {
	case *Created:
		if !ValidName(p.Name) {
			return ws, fmt.Errorf("%w: %q", ErrInvalidName, p.Name)
		}
		out.ID = id
		out.Name = p.Name
		out.Description = p.Description
		out.Image = p.Image
		out.Projects = slices.Clone(p.Projects)
		out.Owner = p.Owner
		out.Resources = p.Resources
		out.Desired = DesiredStopped
		out.CreatedAt = e.Time
	case *Updated:
		if p.Description != nil {
			out.Description = *p.Description
		}
		if p.Image != nil {
			out.Image = *p.Image
		}
		if p.Projects != nil {
			out.Projects = slices.Clone(*p.Projects)
		}
		if p.Resources != nil {
			out.Resources = *p.Resources
		}
	case *StartRequested:
		out.Desired = DesiredRunning
		out.IdleWarning = nil
		out.LastError = "" // a new run: retention starts over
		// The data will diverge from any archive: it no longer allows
		// deleting the volume (the archive stays in the history).
		out.Archive = nil
	case *Running:
		out.Endpoint = &Endpoint{ContainerID: p.ContainerID, Host: p.Host, IP: p.IP, Port: p.Port}
	case *Addressed:
		out.Endpoint = &Endpoint{ContainerID: p.ContainerID, Host: p.Host, IP: p.IP, Port: p.Port}
	case *StopRequested:
		out.Desired = DesiredStopped
	case *Stopped:
		out.Endpoint = nil
	case *Failed:
		f := *p
		out.Failure = &f
		out.Endpoint = nil
		if ws.PurgingDeleted {
			// The purge of a kept volume failed: still deleted, the volume
			// still kept (and listed), the reason in last_error.
			out.Status, out.Failure, out.LastError = StatusDeleted, nil, p.Message
			out.StatusSince, out.PurgingDeleted, out.Desired = ws.StatusSince, false, DesiredDeleted
		}
	case *ArchiveRequested:
		out.Desired = DesiredArchived
	case *Archived:
		out.Archive = &ArchiveInfo{Path: p.Path, SizeBytes: p.SizeBytes, SHA256: p.SHA256}
		out.LastError = ""
	case *ArchiveFailed:
		out.Desired = DesiredStopped
		out.LastError = p.Message
	case *DeleteRequested:
		out.Desired = DesiredDeleted
		out.Purge = false
		out.ArchiveFirst = p.Archive
	case *PurgeRequested:
		if ws.Status == StatusDeleted && !ws.VolumeKept {
			return ws, &IllegalTransitionError{From: ws.Status, Type: e.Type} // nothing left to purge
		}
		out.Desired = DesiredDeleted
		out.Purge = true
		out.ArchiveFirst = false
		out.PurgingDeleted = ws.Status == StatusDeleted
	case *Deleted:
		out.Endpoint = nil
		if p.Archive != nil {
			a := *p.Archive
			out.Archive = &a
		}
		// Events before volume_removed existed: the provisioner removed the
		// volume exactly on a purge or with a verified archive.
		out.VolumeKept = !(p.VolumeRemoved || ws.Purge || (out.Archive != nil && out.Archive.SHA256 != ""))
		out.ArchiveFirst = false
		out.PurgingDeleted = false
	case *LifecycleChanged:
		if p.Hold != nil {
			out.Hold = *p.Hold
		}
		if p.HoldReason != nil {
			out.HoldReason = *p.HoldReason
		}
		if p.IdleTimeoutSeconds != nil {
			out.IdleTimeoutSeconds = *p.IdleTimeoutSeconds
		}
	case *IdleWarning:
		w := *p
		out.IdleWarning = &w
	case *DiskWarning:
		w := *p
		out.DiskWarning = &w
	case *RestoreRequested:
		out.Desired = DesiredStopped
		out.Purge = false
		out.VolumeKept = false // restoring recreates the volume from the archive
	case *Restored:
		out.LastError = ""
	case *RestoreFailed:
		out.Desired = DesiredDeleted
		out.LastError = p.Message
	default:
		return ws, &IllegalTransitionError{From: ws.Status, Type: e.Type}
	}
	return out, nil
}

// Gone reports whether the workspace is deleted for every purpose but its
// history: deleted, or deleted and having its kept volume purged.
func (ws Workspace) Gone() bool { return ws.Status == StatusDeleted || ws.PurgingDeleted }

// Fold applies events in order, starting from the empty state.
func Fold(evs []Envelope) (Workspace, error) {
	var ws Workspace
	for _, e := range evs {
		var err error
		if ws, err = Apply(ws, e); err != nil {
			return ws, fmt.Errorf("event %s (seq %d): %w", e.ID, e.Sequence, err)
		}
	}
	return ws, nil
}
