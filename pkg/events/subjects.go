package events

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Names of the JetStream stream and its subjects. Every service and every
// external integration takes them from here (and docs/events.md mirrors them).
const (
	// Stream is the single JetStream stream that holds the audit log.
	Stream = "BERTH"
	// WorkspaceSubjectPrefix starts every workspace subject:
	// berth.ws.<workspace id>.<event kind>. The kind is the event type's
	// last part (TypeToken), so bus permissions can grant each identity
	// exactly the event types it may append (docs/security.md), while
	// berth.ws.<id>.* keeps one workspace's events in one optimistic
	// concurrency domain.
	WorkspaceSubjectPrefix = "berth.ws."
	// CatalogSubject carries the image allow-list (catalog) events.
	CatalogSubject = "berth.catalog"
	// UsersSubject carries per-user settings (quota overrides).
	UsersSubject = "berth.users"
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
	// DeadLetterStream keeps the dead letters (berth.deadletter.<consumer>)
	// and the redrive requests (berth.redrive.<consumer>).
	DeadLetterStream = "BERTH_DEADLETTER"
	// RedriveSubjectPrefix + <consumer> asks that consumer to handle a
	// dead-lettered message again: an admin's retry. The body is the
	// original message, the Berth-Original-Subject header its subject and
	// Berth-Dead-Letter-Sequence the dead letter it retries. Only the API
	// may publish here; the consumer re-checks the message like any other.
	RedriveSubjectPrefix = "berth.redrive."
	// RedriveDurableSuffix names a consumer's durable on DeadLetterStream
	// that reads its redrive requests (<consumer>-redrive).
	RedriveDurableSuffix = "-redrive"
	// Headers of dead letters and redrive requests: why a message was
	// dead-lettered, where it was published, which dead letter a redrive
	// retries.
	DeadLetterReasonHeader   = "Berth-Dead-Letter-Reason"
	OriginalSubjectHeader    = "Berth-Original-Subject"
	DeadLetterSequenceHeader = "Berth-Dead-Letter-Sequence"
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
	// SessionsBucket is the JetStream KV bucket of browser sessions (key:
	// <user key>.<hash of the session secret>; the secret itself is only
	// in the user's cookie). Entries expire with the session.
	SessionsBucket = "berth_sessions"
	// InstallationBucket keeps the generated installation id (key "id"),
	// which every container, volume and network Berth creates carries.
	InstallationBucket = "berth_installation"
	// SystemsBucket keeps each registered system's credential (key: its
	// name, value: the bcrypt hash of its bus password). Only the API reads
	// or writes it; the rights are in the log (system_registered).
	SystemsBucket = "berth_systems"
	// IntakeBucket remembers every intake command applied (key: a hash of
	// system, source and id; value: the reply), so a duplicate is applied
	// once, however late it comes.
	IntakeBucket = "berth_intake"
)

// validSystem: a system's name is one NATS subject token and a user name.
var validSystem = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// ValidSystemName reports whether name can name a registered system.
func ValidSystemName(name string) bool { return validSystem.MatchString(name) }

// IntakeSystemSubject is where system name sends workspace commands: the
// subject, which only that system's bus identity may publish on, is what
// tells the API who sent a command (NATS does not say who published).
func IntakeSystemSubject(name string) string {
	return IntakeSubjectPrefix + "sys." + name + ".workspace"
}

// SystemUser is registered system name's user on the bus.
func SystemUser(name string) string { return "system-" + name }

// InboxPrefix is where a bus user's replies come (it may read no other
// inbox): clients set it (nats.go: nats.CustomInboxPrefix; nats CLI:
// --inbox-prefix).
func InboxPrefix(user string) string { return "_INBOX_" + user }

// StreamSubjects are the subjects the Stream captures: workspace events,
// the catalog, and berth.ws.<id> without a kind, where logs written before
// the kind was added to the subject (2026-11-24) keep their events. Nothing
// appends there any more; those events are still read and folded.
var StreamSubjects = []string{WorkspaceSubjectPrefix + "*.*", WorkspaceSubjectPrefix + "*", CatalogSubject, UsersSubject}

// Singleton reports whether subject is one of the log's one-subject
// streams of settings (the catalog, user settings) rather than a workspace.
func Singleton(subject string) bool { return subject == CatalogSubject || subject == UsersSubject }

// WorkspaceEvents filters every workspace event, old and new form, in one
// filter subject (a message on a deeper subject is refused by the readers'
// subject check, like any message that does not belong where it is).
const WorkspaceEvents = WorkspaceSubjectPrefix + ">"

// TypeToken is the subject token of a workspace event type: its name
// without "berth.workspace." (start_requested, running, ...).
func TypeToken(t Type) string { return strings.TrimPrefix(string(t), "berth.workspace.") }

// WorkspaceSubject returns the log subject of one workspace event.
func WorkspaceSubject(id string, t Type) string {
	return WorkspaceSubjectPrefix + id + "." + TypeToken(t)
}

// WorkspaceSubjects is the filter of every event of one workspace (new
// form; LegacyWorkspaceSubject holds older ones).
func WorkspaceSubjects(id string) string { return WorkspaceSubjectPrefix + id + ".*" }

// LegacyWorkspaceSubject is where logs written before 2026-11-24 kept a
// workspace's events.
func LegacyWorkspaceSubject(id string) string { return WorkspaceSubjectPrefix + id }

// WorkspaceIDFromSubject returns the workspace id of a log subject, or "" if
// the subject is not a workspace subject.
func WorkspaceIDFromSubject(subject string) string {
	id, _ := splitWorkspaceSubject(subject)
	return id
}

func splitWorkspaceSubject(subject string) (id, kind string) {
	rest, ok := strings.CutPrefix(subject, WorkspaceSubjectPrefix)
	if !ok {
		return "", ""
	}
	id, kind, _ = strings.Cut(rest, ".")
	return id, kind
}

// ErrSubjectMismatch is returned when an event's body does not belong on
// the subject it was published on.
var ErrSubjectMismatch = errors.New("event does not match its log subject")

// CheckSubject verifies that e belongs on natsSubject: a catalog event on
// the catalog subject, a workspace event on its own workspace's subject
// with its own type's kind. Bus permissions are granted per subject, so
// an identity allowed to publish observations must not get a request, a
// catalog change or a user setting folded by writing it into the body.
func CheckSubject(natsSubject string, e Envelope) error {
	if Singleton(natsSubject) || Singleton(e.Subject) {
		if natsSubject != e.Subject || !strings.HasPrefix(string(e.Type), natsSubject+".") {
			return fmt.Errorf("%w: %s event about %q on %s", ErrSubjectMismatch, e.Type, e.Subject, natsSubject)
		}
		return nil
	}
	id, kind := splitWorkspaceSubject(natsSubject)
	switch {
	case id == "":
		return fmt.Errorf("%w: %s is not a log subject", ErrSubjectMismatch, natsSubject)
	case id != e.Subject:
		return fmt.Errorf("%w: event about workspace %q on %s", ErrSubjectMismatch, e.Subject, natsSubject)
	case kind != "" && kind != TypeToken(e.Type):
		return fmt.Errorf("%w: %s on %s", ErrSubjectMismatch, e.Type, natsSubject)
	}
	return nil
}
