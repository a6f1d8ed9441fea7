package events

import (
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
	StatusDeleted   Status = "deleted"   // container gone; terminal
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
		TypeUpdated:         StatusCreated,
		TypeStartRequested:  StatusStarting,
		TypeDeleteRequested: StatusDeleting,
	},
	StatusStarting: {
		TypeRunning:         StatusRunning,
		TypeStopRequested:   StatusStopping,
		TypeFailed:          StatusError,
		TypeDeleteRequested: StatusDeleting,
	},
	StatusRunning: {
		TypeRunning:         StatusRunning, // re-observed (adopted after a crash, new address)
		TypeStopRequested:   StatusStopping,
		TypeStopped:         StatusStopped, // container exited on its own
		TypeFailed:          StatusError,
		TypeDeleteRequested: StatusDeleting,
	},
	StatusStopping: {
		TypeStopped:         StatusStopped,
		TypeStartRequested:  StatusStarting, // launch while a stop is in flight
		TypeFailed:          StatusError,
		TypeDeleteRequested: StatusDeleting,
	},
	StatusStopped: {
		TypeUpdated:          StatusStopped,
		TypeStartRequested:   StatusStarting,
		TypeArchiveRequested: StatusArchiving,
		TypeDeleteRequested:  StatusDeleting,
	},
	StatusError: {
		TypeUpdated:          StatusError,
		TypeStartRequested:   StatusStarting, // retry
		TypeStopRequested:    StatusStopping,
		TypeArchiveRequested: StatusArchiving,
		TypeDeleteRequested:  StatusDeleting,
	},
	StatusArchiving: {
		TypeArchived:      StatusArchived,
		TypeArchiveFailed: StatusStopped, // data untouched, failure in the log
	},
	StatusArchived: {
		TypeDeleteRequested: StatusDeleting,
	},
	StatusDeleting: {
		TypeDeleted: StatusDeleted,
		TypeFailed:  StatusError,
	},
	StatusDeleted: {},
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
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
	// Version is the stream sequence of the last event applied: the expected
	// last subject sequence for the next append.
	Version uint64 `json:"version"`
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
	switch p := p.(type) {
	case *Created:
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
	case *Running:
		out.Endpoint = &Endpoint{ContainerID: p.ContainerID, Host: p.Host, IP: p.IP, Port: p.Port}
	case *StopRequested:
		out.Desired = DesiredStopped
	case *Stopped:
		out.Endpoint = nil
	case *Failed:
		f := *p
		out.Failure = &f
		out.Endpoint = nil
	case *ArchiveRequested:
		out.Desired = DesiredArchived
	case *Archived:
		out.Archive = &ArchiveInfo{Path: p.Path, SizeBytes: p.SizeBytes, SHA256: p.SHA256}
	case *ArchiveFailed:
		out.Desired = DesiredStopped
	case *DeleteRequested:
		out.Desired = DesiredDeleted
		out.Purge = p.Purge
	case *Deleted:
		out.Endpoint = nil
	default:
		return ws, &IllegalTransitionError{From: ws.Status, Type: e.Type}
	}
	return out, nil
}

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
