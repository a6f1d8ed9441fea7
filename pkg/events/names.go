package events

import (
	"errors"
	"regexp"
)

// dnsLabel is what a workspace name must be: it becomes a host name
// (<name>.<domain>), a path (/workspace-<name>) and part of Traefik's rules.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidName reports whether name is a DNS label: 1-63 lowercase letters,
// digits or '-', starting and ending with a letter or digit.
func ValidName(name string) bool { return dnsLabel.MatchString(name) }

// ErrInvalidName: a created event whose name is not a DNS label. The API
// never appends one; the log may hold one written with a leaked
// credential, and router-sync would paste it into Traefik's rules.
var ErrInvalidName = errors.New("workspace name is not a DNS label")
