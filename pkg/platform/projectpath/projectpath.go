// Package projectpath validates a workspace's project folders: relative
// paths under the configured projects root that exist, with no way out of
// the root (no "..", no absolute path, no symlink escape). The API checks
// them on every write and the provisioner again before it mounts them.
package projectpath

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Error says why a project path was refused; Code is stable for clients.
type Error struct {
	Path   string
	Code   string
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("project %q: %s", e.Path, e.Reason) }

// Codes of Error.
const (
	CodeEmpty     = "project_path_empty"
	CodeAbsolute  = "project_path_absolute"
	CodeTraversal = "project_path_traversal"
	CodeNotClean  = "project_path_not_clean"
	CodeChars     = "project_path_characters"
	CodeMissing   = "project_not_found"
	CodeNotDir    = "project_not_directory"
	CodeEscape    = "project_path_escapes_root"
)

var safeChars = regexp.MustCompile(`^[A-Za-z0-9._\-/]+$`)

// Resolve checks rel and returns its absolute, symlink-free path under root.
func Resolve(root, rel string) (string, error) {
	fail := func(code, reason string) (string, error) {
		return "", &Error{Path: rel, Code: code, Reason: reason}
	}
	switch {
	case rel == "":
		return fail(CodeEmpty, "is empty")
	case strings.HasPrefix(rel, "/") || filepath.IsAbs(rel):
		return fail(CodeAbsolute, "must be relative to the projects root, not absolute")
	case slices.Contains(strings.Split(rel, "/"), ".."):
		return fail(CodeTraversal, `must not contain ".."`)
	case !safeChars.MatchString(rel):
		return fail(CodeChars, "may contain only letters, digits, '.', '_', '-' and '/'")
	case path.Clean(rel) != rel || rel == ".":
		return fail(CodeNotClean, "must be a clean path (no empty, '.' or trailing segments)")
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("projects root %s: %w", root, err)
	}
	realRoot, err = filepath.Abs(realRoot)
	if err != nil {
		return "", fmt.Errorf("projects root %s: %w", root, err)
	}
	real, err := filepath.EvalSymlinks(filepath.Join(realRoot, filepath.FromSlash(rel)))
	if errors.Is(err, os.ErrNotExist) {
		return fail(CodeMissing, "does not exist under the projects root")
	}
	if err != nil {
		return fail(CodeMissing, "cannot be resolved: "+err.Error())
	}
	if r, err := filepath.Rel(realRoot, real); err != nil || r == ".." || strings.HasPrefix(r, "../") || r == "." {
		return fail(CodeEscape, "resolves outside the projects root (symlink)")
	}
	fi, err := os.Stat(real)
	if err != nil {
		return fail(CodeMissing, "cannot be read: "+err.Error())
	}
	if !fi.IsDir() {
		return fail(CodeNotDir, "is not a directory")
	}
	return real, nil
}
