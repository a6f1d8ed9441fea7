package app

import (
	"errors"
	"fmt"
)

// Kind classifies an error for the edge (HTTP status, intake dead-letter).
type Kind int

const (
	KindInvalid Kind = iota + 1
	KindForbidden
	KindNotFound
	KindConflict
	KindUnavailable
)

// FieldError is one failed validation rule.
type FieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error is a use-case error with a stable code clients can branch on.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Fields  []FieldError
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Stable error codes.
const (
	CodeValidation     = "validation_failed"
	CodeForbidden      = "forbidden"
	CodeNotFound       = "workspace_not_found"
	CodeSystemNotFound = "system_not_found"
	CodeImageNotFound  = "image_not_found"
	CodeNameTaken      = "name_taken"
	CodeImageExists    = "image_exists"
	// A user's launch of an image the catalog does not let users launch;
	// a launch whose workspace runs another image.
	CodeImageNotLaunchable = "image_not_launchable"
	CodeImageMismatch      = "image_mismatch"
	CodeIllegalTransition  = "illegal_transition"
	CodeConcurrent         = "concurrent_modification"
	CodeUnavailable        = "unavailable"
	CodeEngineUnavailable  = "engine_unavailable"
	CodeNoArchive          = "no_archive"
	CodeQuotaWorkspaces    = "quota_workspaces_exceeded"
	CodeQuotaRunning       = "quota_running_exceeded"
	// Dead letters: none at that sequence; its consumer reads no redrive.
	CodeDeadLetterNotFound = "dead_letter_not_found"
	CodeNotRetryable       = "dead_letter_not_retryable"
)

var errNotFound = &Error{Kind: KindNotFound, Code: CodeNotFound, Message: "no such workspace"}

func invalid(fields ...FieldError) error {
	msg := fields[0].Message
	if len(fields) > 1 {
		msg = fmt.Sprintf("%d fields are invalid", len(fields))
	}
	return &Error{Kind: KindInvalid, Code: CodeValidation, Message: msg, Fields: fields}
}

func forbidden(msg string) error {
	return &Error{Kind: KindForbidden, Code: CodeForbidden, Message: msg}
}

func unavailable(err error) error {
	return &Error{Kind: KindUnavailable, Code: CodeUnavailable, Message: "the event log is not reachable", Err: err}
}

// AsError returns err as an *Error if it is one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
