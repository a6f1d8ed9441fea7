// Package configdir writes Traefik's dynamic configuration into the
// directory its file provider watches, atomically: Traefik must never read
// a partial or empty file, because one unparsable file fails the whole
// reload.
package configdir

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// Writer owns one file in the watched directory.
type Writer struct {
	Dir  string
	Name string // e.g. berth-workspaces.yml
	last []byte
}

// Write replaces the file with content if it changed: a temp file with an
// extension Traefik ignores, fsync, rename over the target, fsync the dir.
// It reports whether the file was written.
func (w *Writer) Write(content []byte) (bool, error) {
	target := filepath.Join(w.Dir, w.Name)
	if w.last == nil {
		if cur, err := os.ReadFile(target); err == nil {
			w.last = cur
		}
	}
	if w.last != nil && bytes.Equal(w.last, content) {
		return false, nil
	}
	if err := os.MkdirAll(w.Dir, 0o755); err != nil {
		return false, fmt.Errorf("config dir %s: %w", w.Dir, err)
	}
	tmp, err := os.CreateTemp(w.Dir, "."+w.Name+".*.tmp")
	if err != nil {
		return false, fmt.Errorf("temp file in %s: %w", w.Dir, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return false, fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return false, fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, fmt.Errorf("fsync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return false, fmt.Errorf("rename to %s: %w", target, err)
	}
	if d, err := os.Open(w.Dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	w.last = bytes.Clone(content)
	return true, nil
}

// RemoveStale deletes temp files a writer killed mid-write left behind
// (Traefik ignores them, but they pile up). Call it before the first Write;
// it reports how many it removed.
func (w *Writer) RemoveStale() (int, error) {
	stale, err := filepath.Glob(filepath.Join(w.Dir, "."+w.Name+".*.tmp"))
	if err != nil {
		return 0, fmt.Errorf("stale temp files in %s: %w", w.Dir, err)
	}
	for _, f := range stale {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			return 0, fmt.Errorf("remove stale %s: %w", f, err)
		}
	}
	return len(stale), nil
}
