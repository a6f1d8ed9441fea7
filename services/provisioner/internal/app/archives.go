package app

import "io"

// ArchiveSource is one tree to put in an archive: a tar stream (as the
// engine's copy-from-container returns it) whose first path component is
// replaced by Prefix.
type ArchiveSource struct {
	Prefix string
	Open   func() (io.ReadCloser, error)
}

// ArchiveInfo describes an archive file.
type ArchiveInfo struct {
	Path   string // relative to the archive folder, as the events record it
	Size   int64
	SHA256 string
	Files  int // tar entries of any kind
}

// Archives is the folder of workspace archives (internal/archive). Writes
// are atomic, and an archive is read back before anyone may delete the
// data it holds.
type Archives interface {
	// Dir names the folder in failure messages.
	Dir() string
	// Create writes sources into the archive rel.
	Create(rel string, sources []ArchiveSource) (ArchiveInfo, error)
	// Verify reads written back and checks its size and checksum.
	Verify(written ArchiveInfo) (ArchiveInfo, error)
	// Extract verifies want, then writes its top-level folder from to out
	// as a plain tar, renamed to to; it returns the entries written.
	Extract(want ArchiveInfo, from, to string, out io.Writer) (int, error)
}
