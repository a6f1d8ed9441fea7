// Package capability is the allow-list of Linux capabilities a catalog
// image may get back after Berth drops them all. The API refuses anything
// else when an image is added, and the provisioner checks again before it
// creates a container, because the log may hold events no API validated.
package capability

import (
	"fmt"
	"slices"
	"strings"
)

// Allowed are capabilities Docker grants by default that harmless images
// commonly need (file ownership, privilege drop in entrypoints, low ports).
// Everything that reaches past the container (SYS_ADMIN, SYS_PTRACE,
// DAC_READ_SEARCH, NET_ADMIN, SYS_MODULE, BPF, …) is refused.
var Allowed = []string{"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "NET_BIND_SERVICE", "SETGID", "SETUID"}

// Normalize spells a capability as Docker's cap_add does: upper case,
// without the CAP_ prefix.
func Normalize(c string) string {
	return strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(c)), "CAP_")
}

// Check refuses a capability that is not on the allow-list.
func Check(c string) error {
	if slices.Contains(Allowed, Normalize(c)) {
		return nil
	}
	return fmt.Errorf("capability %q is not allowed; allowed: %s", c, strings.Join(Allowed, ", "))
}
