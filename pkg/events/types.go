package events

import (
	"slices"
	"strings"
	"time"
)

// Type is the stable CloudEvents type name of an event. Names never change
// once released; a payload change that is not backward compatible bumps the
// schema version instead.
type Type string

// Workspace lifecycle events. "Requested" events are intents appended by the
// API, the reaper or the intake; the others are observations appended by the
// provisioner (or the archiver) after it saw Docker do the thing.
const (
	TypeCreated        Type = "berth.workspace.created"
	TypeUpdated        Type = "berth.workspace.updated"
	TypeStartRequested Type = "berth.workspace.start_requested"
	TypeRunning        Type = "berth.workspace.running"
	// Addressed: the container runs and has its address, but its health
	// check has not passed yet (the route is loaded while the IDE boots).
	TypeAddressed        Type = "berth.workspace.addressed"
	TypeStopRequested    Type = "berth.workspace.stop_requested"
	TypeStopped          Type = "berth.workspace.stopped"
	TypeFailed           Type = "berth.workspace.failed"
	TypeArchiveRequested Type = "berth.workspace.archive_requested"
	TypeArchived         Type = "berth.workspace.archived"
	TypeArchiveFailed    Type = "berth.workspace.archive_failed"
	TypeDeleteRequested  Type = "berth.workspace.delete_requested"
	TypePurgeRequested   Type = "berth.workspace.purge_requested"
	TypeDeleted          Type = "berth.workspace.deleted"
	// Lifecycle policy and reaping.
	TypeLifecycleChanged Type = "berth.workspace.lifecycle_changed"
	TypeIdleWarning      Type = "berth.workspace.idle_warning"
	TypeDiskWarning      Type = "berth.workspace.disk_warning"
	TypeRestoreRequested Type = "berth.workspace.restore_requested"
	TypeRestored         Type = "berth.workspace.restored"
	TypeRestoreFailed    Type = "berth.workspace.restore_failed"
)

// Catalog (image allow-list) events, on CatalogSubject.
const (
	TypeImageAdded   Type = "berth.catalog.image_added"
	TypeImageRemoved Type = "berth.catalog.image_removed"
	// Which images users may launch themselves, and the default one.
	TypeImageUpdated Type = "berth.catalog.image_updated"
)

// User settings events, on UsersSubject.
const (
	TypeQuotaSet Type = "berth.users.quota_set"
	// Other systems that may send intake commands (docs/intake.md).
	TypeSystemRegistered Type = "berth.users.system_registered"
	TypeSystemRevoked    Type = "berth.users.system_revoked"
)

// Payload is the data of one event type.
type Payload interface {
	EventType() Type
}

// Resources are a workspace container's limits.
type Resources struct {
	MemoryBytes int64 `json:"memory_bytes"`
	// MilliCPUs is CPU time in thousandths of a core (500 = half a core).
	MilliCPUs int64 `json:"milli_cpus"`
	Pids      int64 `json:"pids"`
	// DiskBytes bounds the container's writable layer plus its home
	// volume; 0 (workspaces defined before disk limits) means the
	// installation's BERTH_MAX_DISK.
	DiskBytes int64 `json:"disk_bytes,omitempty"`
}

// Created: an admin or a user's launch defined a new workspace.
type Created struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Image       string    `json:"image"`
	Projects    []string  `json:"projects"`
	Owner       string    `json:"owner"`
	Resources   Resources `json:"resources"`
}

// Updated changes a workspace's definition. Nil fields are unchanged.
// Image, projects and resources take effect at the next container creation.
type Updated struct {
	Description *string    `json:"description,omitempty"`
	Image       *string    `json:"image,omitempty"`
	Projects    *[]string  `json:"projects,omitempty"`
	Resources   *Resources `json:"resources,omitempty"`
}

// StartRequested asks for the workspace to run.
type StartRequested struct{}

// Running is observed when the container answers its health check.
type Running struct {
	ContainerID string `json:"container_id"`
	// Host is the container's name on the workspace network (what a proxy
	// on that network dials); IP is its address there (what a proxy on the
	// host dials).
	Host string `json:"host"`
	IP   string `json:"ip"`
	Port int    `json:"port"`
}

// Addressed is observed while a workspace starts, once its container runs
// and has an address: router-sync routes it then, so Traefik has loaded
// the route by the time the health check passes. Same fields as Running.
type Addressed Running

// StopRequested asks for the workspace to stop.
type StopRequested struct{}

// Stopped is observed when the container is no longer running.
type Stopped struct {
	ExitCode int `json:"exit_code"`
}

// Failed is observed when the workspace could not be brought to its desired
// state. Message says what a user or admin can do about it.
type Failed struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
}

// ArchiveRequested asks for the home volume to be archived.
type ArchiveRequested struct{}

// Archived is recorded once the archive was written and verified.
type Archived struct {
	Path      string `json:"path"`
	SizeBytes int64  `json:"size_bytes"`
	SHA256    string `json:"sha256"`
}

// ArchiveFailed leaves the workspace and its data as they were.
type ArchiveFailed struct {
	Message string `json:"message"`
}

// DeleteRequested asks for the container to be removed; Archive asks for
// the home volume to be archived and verified first, then removed.
// Without it the volume is kept (or removed if a verified archive of it
// already exists). A purge is its own event (PurgeRequested), so bus
// rights can keep it to the API.
type DeleteRequested struct {
	// Purge was how a delete asked for the volume's removal before
	// purge_requested existed; it is kept in old logs as history and no
	// longer honoured (a reaper may append delete_requested, never a purge).
	Purge bool `json:"purge,omitempty"`
	// Archive archives the home volume first, then removes it; the
	// workspace can be restored from the archive.
	Archive bool `json:"archive,omitempty"`
}

// PurgeRequested asks for the container and the home volume to be removed
// without an archive; on a deleted workspace whose volume was kept, it
// removes that volume.
type PurgeRequested struct{}

// Deleted is observed when the container is gone; VolumeRemoved says the
// home volume went too, and Archive is the verified archive made on the
// way (a delete with Archive).
type Deleted struct {
	VolumeRemoved bool         `json:"volume_removed,omitempty"`
	Archive       *ArchiveInfo `json:"archive,omitempty"`
}

// LifecycleChanged sets how the reaper treats a workspace. Nil fields are
// unchanged. Hold exempts the workspace from idle stops and retention (set by
// admins, e.g. for a course or a legal hold); IdleTimeoutSeconds overrides
// the default idle timeout (0 = back to the default; the reaper clamps it to
// the admin bounds).
type LifecycleChanged struct {
	Hold               *bool   `json:"hold,omitempty"`
	HoldReason         *string `json:"hold_reason,omitempty"`
	IdleTimeoutSeconds *int64  `json:"idle_timeout_seconds,omitempty"`
}

// IdleWarning tells dashboards that a running workspace will be stopped for
// inactivity at StopAt unless it is used before then.
type IdleWarning struct {
	IdleSince time.Time `json:"idle_since"`
	StopAt    time.Time `json:"stop_at"`
}

// DiskWarning tells the owner that a running workspace's disk use
// (writable layer plus home volume) is near or over its limit: the
// provisioner stops it (failed, disk_quota_exceeded) if it is still over
// at StopAfter.
type DiskWarning struct {
	UsedBytes  int64     `json:"used_bytes"`
	LimitBytes int64     `json:"limit_bytes"`
	StopAfter  time.Time `json:"stop_after"`
}

// RestoreRequested asks for a deleted workspace's home volume to be
// recreated from its verified archive (admins only).
type RestoreRequested struct{}

// Restored is recorded once the home volume holds the archive's contents
// again; the workspace is then stopped and can be started.
type Restored struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Files  int    `json:"files"`
}

// RestoreFailed leaves the workspace deleted; the archive is untouched.
type RestoreFailed struct {
	Message string `json:"message"`
}

// ImageAdded puts an image on the allow-list.
type ImageAdded struct {
	Ref         string `json:"ref"`
	Description string `json:"description"`
	// CapAdd lists the Linux capabilities the image needs back after
	// cap-drop ALL (empty for most images).
	CapAdd []string `json:"cap_add"`
	// Profile says how the image's IDE runs (nil: the defaults).
	Profile *ImageProfile `json:"profile,omitempty"`
	// Launchable: users may launch a workspace of it themselves (their
	// own, one per image); otherwise only an admin assigns it.
	Launchable bool `json:"launchable,omitempty"`
}

// ImageUpdated changes a catalog image's settings; a nil field is left as
// it was. Launchable: users may launch it themselves. Default true makes
// it the default (what "Launch workspace" starts for a user with no
// workspace yet, and what a workspace created without an image gets), in
// place of any other; false on the default goes back to the installation's
// configured one (BERTH_DEFAULT_IMAGE).
type ImageUpdated struct {
	Ref        string `json:"ref"`
	Launchable *bool  `json:"launchable,omitempty"`
	Default    *bool  `json:"default,omitempty"`
}

// ImageRemoved takes an image off the allow-list. Existing workspaces keep
// it; new ones cannot use it.
type ImageRemoved struct {
	Ref string `json:"ref"`
}

// QuotaSet overrides one user's workspace quota (admins). A nil limit
// goes back to the installation's default; 0 means no limit.
type QuotaSet struct {
	Subject    string `json:"sub"`
	Workspaces *int   `json:"workspaces"`
	Running    *int   `json:"running"`
}

// SystemRegistered lets another system send intake commands of Types for
// the workspaces of Owners ("*": anyone's). Registering a name again
// replaces its rights (and its credential, which is never in the log).
type SystemRegistered struct {
	Name   string   `json:"name"`
	Types  []string `json:"types"`
	Owners []string `json:"owners"`
	// ReadEvents also lets it subscribe to Berth's own events as they are
	// appended (workspace events and the catalog), read-only.
	ReadEvents bool `json:"read_events,omitempty"`
}

// SystemRevoked ends a system's rights and credential.
type SystemRevoked struct {
	Name string `json:"name"`
}

func (QuotaSet) EventType() Type         { return TypeQuotaSet }
func (SystemRegistered) EventType() Type { return TypeSystemRegistered }
func (SystemRevoked) EventType() Type    { return TypeSystemRevoked }
func (Created) EventType() Type          { return TypeCreated }
func (Updated) EventType() Type          { return TypeUpdated }
func (StartRequested) EventType() Type   { return TypeStartRequested }
func (Running) EventType() Type          { return TypeRunning }
func (Addressed) EventType() Type        { return TypeAddressed }
func (StopRequested) EventType() Type    { return TypeStopRequested }
func (Stopped) EventType() Type          { return TypeStopped }
func (Failed) EventType() Type           { return TypeFailed }
func (ArchiveRequested) EventType() Type { return TypeArchiveRequested }
func (Archived) EventType() Type         { return TypeArchived }
func (ArchiveFailed) EventType() Type    { return TypeArchiveFailed }
func (DeleteRequested) EventType() Type  { return TypeDeleteRequested }
func (PurgeRequested) EventType() Type   { return TypePurgeRequested }
func (Deleted) EventType() Type          { return TypeDeleted }
func (LifecycleChanged) EventType() Type { return TypeLifecycleChanged }
func (IdleWarning) EventType() Type      { return TypeIdleWarning }
func (DiskWarning) EventType() Type      { return TypeDiskWarning }
func (RestoreRequested) EventType() Type { return TypeRestoreRequested }
func (Restored) EventType() Type         { return TypeRestored }
func (RestoreFailed) EventType() Type    { return TypeRestoreFailed }
func (ImageAdded) EventType() Type       { return TypeImageAdded }
func (ImageRemoved) EventType() Type     { return TypeImageRemoved }
func (ImageUpdated) EventType() Type     { return TypeImageUpdated }

// registry maps each type to a constructor of its payload and its current
// schema version.
var registry = map[Type]func() Payload{
	TypeCreated:          func() Payload { return &Created{} },
	TypeUpdated:          func() Payload { return &Updated{} },
	TypeStartRequested:   func() Payload { return &StartRequested{} },
	TypeRunning:          func() Payload { return &Running{} },
	TypeAddressed:        func() Payload { return &Addressed{} },
	TypeStopRequested:    func() Payload { return &StopRequested{} },
	TypeStopped:          func() Payload { return &Stopped{} },
	TypeFailed:           func() Payload { return &Failed{} },
	TypeArchiveRequested: func() Payload { return &ArchiveRequested{} },
	TypeArchived:         func() Payload { return &Archived{} },
	TypeArchiveFailed:    func() Payload { return &ArchiveFailed{} },
	TypeDeleteRequested:  func() Payload { return &DeleteRequested{} },
	TypePurgeRequested:   func() Payload { return &PurgeRequested{} },
	TypeDeleted:          func() Payload { return &Deleted{} },
	TypeLifecycleChanged: func() Payload { return &LifecycleChanged{} },
	TypeIdleWarning:      func() Payload { return &IdleWarning{} },
	TypeDiskWarning:      func() Payload { return &DiskWarning{} },
	TypeRestoreRequested: func() Payload { return &RestoreRequested{} },
	TypeRestored:         func() Payload { return &Restored{} },
	TypeRestoreFailed:    func() Payload { return &RestoreFailed{} },
	TypeImageAdded:       func() Payload { return &ImageAdded{} },
	TypeImageRemoved:     func() Payload { return &ImageRemoved{} },
	TypeImageUpdated:     func() Payload { return &ImageUpdated{} },
	TypeQuotaSet:         func() Payload { return &QuotaSet{} },
	TypeSystemRegistered: func() Payload { return &SystemRegistered{} },
	TypeSystemRevoked:    func() Payload { return &SystemRevoked{} },
}

// schemaVersions records types whose schema moved past version 1.
var schemaVersions = map[Type]int{}

// CurrentSchemaVersion is the schema version writers use for t.
func CurrentSchemaVersion(t Type) int {
	if v, ok := schemaVersions[t]; ok {
		return v
	}
	return 1
}

// Types lists every registered event type.
func Types() []Type {
	out := make([]Type, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	return out
}

// WorkspaceTypes lists every workspace event type, sorted.
func WorkspaceTypes() []Type {
	var out []Type
	for t := range registry {
		if strings.HasPrefix(string(t), "berth.workspace.") {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}
