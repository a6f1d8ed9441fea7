// Package app is the provisioner's decision logic: what a workspace's folded
// state asks of Docker, and how the outcome is recorded in the log.
package app

import "github.com/berthdev/berth/pkg/events"

// Action is what the runtime must do for a workspace.
type Action int

const (
	ActionNone Action = iota
	ActionEnsureRunning
	ActionEnsureStopped
	ActionEnsureRemoved
	ActionArchive
	ActionRestore
	// ActionPrepare creates a defined workspace's container ahead of its
	// first start; nothing is recorded (the state does not change).
	ActionPrepare
)

func (a Action) String() string {
	return [...]string{"none", "ensure-running", "ensure-stopped", "ensure-removed", "archive", "restore", "prepare"}[a]
}

// Plan decides from the workspace's current state, never from the event
// that woke the provisioner: a redelivered or stale event therefore cannot
// undo a newer request, and handling is idempotent.
func Plan(ws events.Workspace) Action {
	switch ws.Status {
	case events.StatusStarting:
		return ActionEnsureRunning
	case events.StatusStopping:
		return ActionEnsureStopped
	case events.StatusDeleting:
		return ActionEnsureRemoved
	case events.StatusArchiving:
		return ActionArchive
	case events.StatusRestoring:
		return ActionRestore
	case events.StatusCreated:
		if ws.Desired != events.DesiredRunning {
			return ActionPrepare
		}
	}
	return ActionNone
}
