package events

import "strings"

// Names of the JetStream stream and its subjects. Every service and every
// external integration takes them from here (and docs/events.md mirrors them).
const (
	// Stream is the single JetStream stream that holds the audit log.
	Stream = "BERTH"
	// WorkspaceSubjectPrefix followed by a workspace id is that workspace's
	// subject: one subject per workspace, so appends can use per-subject
	// optimistic concurrency.
	WorkspaceSubjectPrefix = "berth.ws."
	// CatalogSubject carries the image allow-list (catalog) events.
	CatalogSubject = "berth.catalog"
	// IntakeSubjectPrefix is where other systems publish CloudEvents asking
	// Berth to act (start, stop, activity). The API validates them and
	// appends to the log, or dead-letters them. It is not part of Stream.
	IntakeSubjectPrefix = "berth.intake."
	// IntakeActivitySubject is where other systems report that a workspace
	// is in use (core NATS, body {"workspace_id": "<id>"}); the API records
	// it in ActivityBucket. Not part of Stream: activity is not audit.
	IntakeActivitySubject = IntakeSubjectPrefix + "activity"
	// DeadLetterSubjectPrefix receives messages that can never be applied,
	// with the reason in the Berth-Dead-Letter-Reason header.
	DeadLetterSubjectPrefix = "berth.deadletter."
	// NameClaimsBucket is the JetStream KV bucket that makes workspace names
	// unique across concurrent writers (key: name, value: workspace id).
	NameClaimsBucket = "berth_names"
	// ServiceStatusBucket is the JetStream KV bucket where provisioners
	// report whether they reach the container engine (key:
	// provisioner.<instance>), so the API can refuse starts with 503 while
	// no engine is reachable.
	ServiceStatusBucket = "berth_services"
	// ActivityBucket is the JetStream KV bucket of last activity per
	// workspace (key: workspace id, value: RFC 3339 time). High-volume
	// signals live here, not in the audit log.
	ActivityBucket = "berth_activity"
)

// StreamSubjects are the subjects the Stream captures.
var StreamSubjects = []string{WorkspaceSubjectPrefix + "*", CatalogSubject}

// WorkspaceSubject returns the log subject of one workspace.
func WorkspaceSubject(id string) string { return WorkspaceSubjectPrefix + id }

// WorkspaceIDFromSubject returns the workspace id of a log subject, or "" if
// the subject is not a workspace subject.
func WorkspaceIDFromSubject(subject string) string {
	id, ok := strings.CutPrefix(subject, WorkspaceSubjectPrefix)
	if !ok {
		return ""
	}
	return id
}
