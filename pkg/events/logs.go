package events

import (
	"fmt"
	"regexp"
)

// LogsSubject is where the API asks the provisioner for a workspace
// container's output (core NATS request/reply, queue group
// "provisioner"): only the API and ops may publish on it, only the
// provisioner may subscribe.
const LogsSubject = "berth.provisioner.logs"

// Bounds of one logs request: a person reads a tail, not a whole history;
// the reply must fit in a NATS message (1 MiB by default) with its JSON.
const (
	MaxLogTail  = 5000
	MaxLogBytes = 512 << 10
)

// LogsRequest asks for the last Tail lines of a workspace's container.
type LogsRequest struct {
	WorkspaceID string `json:"workspace_id"`
	Tail        int    `json:"tail"`
	Timestamps  bool   `json:"timestamps,omitempty"`
}

// Check refuses a request the provisioner would not serve.
func (r LogsRequest) Check() error {
	if !workspaceID.MatchString(r.WorkspaceID) {
		return fmt.Errorf("workspace id %q is not one", r.WorkspaceID)
	}
	if r.Tail < 1 || r.Tail > MaxLogTail {
		return fmt.Errorf("tail %d: want 1 to %d", r.Tail, MaxLogTail)
	}
	return nil
}

// workspaceID: ids are UUIDs; anything of their alphabet is looked up
// (and not found), nothing else reaches the engine.
var workspaceID = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

// LogsReply is the provisioner's answer: the output (stdout and stderr
// interleaved as the engine kept them, at most MaxLogBytes, the newest
// kept), or an error with a stable code.
type LogsReply struct {
	Logs      string `json:"logs"`
	Truncated bool   `json:"truncated,omitempty"`
	// Code: "bad_request", "no_container" (never started, or removed),
	// "engine_unavailable".
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}
