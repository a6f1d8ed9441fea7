package httpapi

import (
	"encoding/json"
	"time"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/services/api/internal/app"
)

// The response bodies are the API's own types, mapped from the use cases'
// results: a change to the fold's state (events.Workspace) or to app's
// types cannot change what clients read without a change here.
// bodies_test.go pins their JSON to testdata and to openapi.yaml.

// workspaceBody is a workspace as the API returns it: its state plus the
// URL it is (or will be) reachable at. The fields, their names, order and
// omissions are those of the body before it had its own type.
type workspaceBody struct {
	ID                 string           `json:"id"`
	Name               string           `json:"name"`
	Description        string           `json:"description"`
	Image              string           `json:"image"`
	Projects           []string         `json:"projects"`
	Owner              string           `json:"owner"`
	Resources          resourcesBody    `json:"resources"`
	Status             string           `json:"status"`
	Desired            string           `json:"desired"`
	Reason             string           `json:"reason,omitempty"`
	Failure            *failureBody     `json:"failure,omitempty"`
	Endpoint           *endpointBody    `json:"endpoint,omitempty"`
	Archive            *archiveBody     `json:"archive,omitempty"`
	Purge              bool             `json:"purge,omitempty"`
	PurgingDeleted     bool             `json:"purging_deleted,omitempty"`
	ArchiveFirst       bool             `json:"archive_first,omitempty"`
	VolumeKept         bool             `json:"volume_kept,omitempty"`
	Hold               bool             `json:"hold"`
	HoldReason         string           `json:"hold_reason,omitempty"`
	IdleTimeoutSeconds int64            `json:"idle_timeout_seconds,omitempty"`
	IdleWarning        *idleWarningBody `json:"idle_warning,omitempty"`
	DiskWarning        *diskWarningBody `json:"disk_warning,omitempty"`
	LastError          string           `json:"last_error,omitempty"`
	StatusSince        time.Time        `json:"status_since"`
	CreatedAt          time.Time        `json:"created_at"`
	UpdatedAt          time.Time        `json:"updated_at"`
	Version            uint64           `json:"version"`
	URL                string           `json:"url"`
}

type resourcesBody struct {
	MemoryBytes int64 `json:"memory_bytes"`
	MilliCPUs   int64 `json:"milli_cpus"`
	Pids        int64 `json:"pids"`
	DiskBytes   int64 `json:"disk_bytes,omitempty"`
}

type failureBody struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
}

type endpointBody struct {
	ContainerID string `json:"container_id"`
	Host        string `json:"host"`
	IP          string `json:"ip"`
	Port        int    `json:"port"`
}

type archiveBody struct {
	Path      string `json:"path"`
	SizeBytes int64  `json:"size_bytes"`
	SHA256    string `json:"sha256"`
}

type diskWarningBody struct {
	UsedBytes  int64     `json:"used_bytes"`
	LimitBytes int64     `json:"limit_bytes"`
	StopAfter  time.Time `json:"stop_after"`
}

type idleWarningBody struct {
	IdleSince time.Time `json:"idle_since"`
	StopAt    time.Time `json:"stop_at"`
}

// workspaceOf maps a workspace's state to its body; internal state (the
// cause of the last request) stays out.
func workspaceOf(ws events.Workspace, url string) workspaceBody {
	b := workspaceBody{
		ID: ws.ID, Name: ws.Name, Description: ws.Description, Image: ws.Image, Projects: ws.Projects, Owner: ws.Owner,
		Resources: resourcesBody{MemoryBytes: ws.Resources.MemoryBytes, MilliCPUs: ws.Resources.MilliCPUs, Pids: ws.Resources.Pids, DiskBytes: ws.Resources.DiskBytes},
		Status:    string(ws.Status), Desired: string(ws.Desired), Reason: ws.Reason,
		Purge: ws.Purge, PurgingDeleted: ws.PurgingDeleted, ArchiveFirst: ws.ArchiveFirst, VolumeKept: ws.VolumeKept,
		Hold: ws.Hold, HoldReason: ws.HoldReason, IdleTimeoutSeconds: ws.IdleTimeoutSeconds, LastError: ws.LastError,
		StatusSince: ws.StatusSince, CreatedAt: ws.CreatedAt, UpdatedAt: ws.UpdatedAt, Version: ws.Version, URL: url,
	}
	if f := ws.Failure; f != nil {
		b.Failure = &failureBody{Code: f.Code, Message: f.Message, Retryable: f.Retryable}
	}
	if e := ws.Endpoint; e != nil {
		b.Endpoint = &endpointBody{ContainerID: e.ContainerID, Host: e.Host, IP: e.IP, Port: e.Port}
	}
	if a := ws.Archive; a != nil {
		b.Archive = &archiveBody{Path: a.Path, SizeBytes: a.SizeBytes, SHA256: a.SHA256}
	}
	if w := ws.IdleWarning; w != nil {
		b.IdleWarning = &idleWarningBody{IdleSince: w.IdleSince, StopAt: w.StopAt}
	}
	if w := ws.DiskWarning; w != nil {
		b.DiskWarning = &diskWarningBody{UsedBytes: w.UsedBytes, LimitBytes: w.LimitBytes, StopAfter: w.StopAfter}
	}
	return b
}

// deadLetterBody is one dead letter.
type deadLetterBody struct {
	Sequence        uint64          `json:"sequence"`
	Time            time.Time       `json:"time"`
	Consumer        string          `json:"consumer"`
	Reason          string          `json:"reason"`
	OriginalSubject string          `json:"original_subject"`
	Event           json.RawMessage `json:"event,omitempty"`
	Raw             string          `json:"raw,omitempty"`
}

func deadLetterOf(d app.DeadLetter) deadLetterBody {
	return deadLetterBody{Sequence: d.Sequence, Time: d.Time, Consumer: d.Consumer, Reason: d.Reason,
		OriginalSubject: d.OriginalSubject, Event: d.Event, Raw: d.Raw}
}

// deadLetterPageBody is one page of dead letters; next while more may follow.
type deadLetterPageBody struct {
	Entries []deadLetterBody `json:"entries"`
	Next    uint64           `json:"next,omitempty"`
}

func deadLetterPageOf(p app.DeadLetterPage) deadLetterPageBody {
	out := deadLetterPageBody{Entries: make([]deadLetterBody, 0, len(p.Entries)), Next: p.Next}
	for _, d := range p.Entries {
		out.Entries = append(out.Entries, deadLetterOf(d))
	}
	return out
}

// retryBody says what a retry published: for which consumer, and where the
// redrive request is stored in the dead-letter stream.
type retryBody struct {
	Retried         uint64 `json:"retried"`
	Consumer        string `json:"consumer"`
	RedriveSequence uint64 `json:"redrive_sequence"`
}
