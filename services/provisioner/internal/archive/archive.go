// Package archive writes, verifies and reads back workspace archives: a
// gzip-compressed tar whose top-level folders are "home" (the home volume)
// and, if configured, "projects". Files are written atomically and verified
// by reading them back before anyone may delete the data they hold.
package archive

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthdev/berth/services/provisioner/internal/app"
)

// Info describes an archive file; Path is as given to Create (relative to
// the archive dir).
type Info = app.ArchiveInfo

// Source is one tree to put in the archive: a tar stream (as Docker's
// copy-from-container returns it) whose first path component is replaced
// by Prefix.
type Source = app.ArchiveSource

// Folder is an archive folder as the provisioner's app uses it
// (app.Archives).
type Folder string

// Dir returns the folder's path.
func (f Folder) Dir() string { return string(f) }

// Create is Create in f.
func (f Folder) Create(rel string, sources []Source) (Info, error) {
	return Create(string(f), rel, sources)
}

// Verify is Verify in f.
func (f Folder) Verify(want Info) (Info, error) { return Verify(string(f), want) }

// Extract is Extract in f.
func (f Folder) Extract(want Info, from, to string, out io.Writer) (int, error) {
	return Extract(string(f), want, from, to, out)
}

// Create writes the sources into dir/rel atomically (temporary file, fsync,
// rename, directory fsync) and returns what it wrote.
func Create(dir, rel string, sources []Source) (Info, error) {
	full := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
		return Info{}, fmt.Errorf("create archive folder: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(full), "."+filepath.Base(full)+".*.tmp")
	if err != nil {
		return Info{}, fmt.Errorf("create archive file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	defer tmp.Close()
	sum := sha256.New()
	counted := &countingWriter{w: io.MultiWriter(tmp, sum)}
	gz := gzip.NewWriter(counted)
	tw := tar.NewWriter(gz)
	files := 0
	for _, src := range sources {
		n, err := copyTree(tw, src)
		if err != nil {
			return Info{}, err
		}
		files += n
	}
	if err := tw.Close(); err != nil {
		return Info{}, fmt.Errorf("finish archive: %w", err)
	}
	if err := gz.Close(); err != nil {
		return Info{}, fmt.Errorf("finish archive: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return Info{}, fmt.Errorf("sync archive: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return Info{}, fmt.Errorf("close archive: %w", err)
	}
	if err := os.Rename(tmp.Name(), full); err != nil {
		return Info{}, fmt.Errorf("publish archive: %w", err)
	}
	if d, err := os.Open(filepath.Dir(full)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return Info{}, fmt.Errorf("sync archive folder: %w", err)
		}
	}
	return Info{Path: rel, Size: counted.n, SHA256: hex.EncodeToString(sum.Sum(nil)), Files: files}, nil
}

func copyTree(tw *tar.Writer, src Source) (int, error) {
	rc, err := src.Open()
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", src.Prefix, err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("read %s: %w", src.Prefix, err)
		}
		h.Name = rebase(h.Name, src.Prefix)
		if err := tw.WriteHeader(h); err != nil {
			return n, fmt.Errorf("write %s: %w", h.Name, err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return n, fmt.Errorf("write %s: %w", h.Name, err)
		}
		n++
	}
}

// rebase replaces the first path component of name with prefix.
func rebase(name, prefix string) string {
	_, rest, found := strings.Cut(strings.TrimPrefix(name, "./"), "/")
	if !found || rest == "" {
		if strings.HasSuffix(name, "/") {
			return prefix + "/"
		}
		return prefix
	}
	return prefix + "/" + rest
}

// Verify reads the archive back: size and SHA-256 of the file must match
// want (when set), and the whole tar must decompress and parse (gzip checks
// its CRC). It returns what it found.
func Verify(dir string, want Info) (Info, error) {
	f, err := os.Open(filepath.Join(dir, want.Path))
	if err != nil {
		return Info{}, fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	sum := sha256.New()
	counted := &countingReader{r: io.TeeReader(f, sum)}
	files, err := walk(counted, nil, "")
	if err != nil {
		return Info{}, fmt.Errorf("archive %s is damaged: %w", want.Path, err)
	}
	// Drain what the tar reader left (gzip trailer, padding) so the
	// checksum covers the whole file.
	if _, err := io.Copy(io.Discard, counted); err != nil {
		return Info{}, fmt.Errorf("read archive: %w", err)
	}
	got := Info{Path: want.Path, Size: counted.n, SHA256: hex.EncodeToString(sum.Sum(nil)), Files: files}
	if want.SHA256 != "" && got.SHA256 != want.SHA256 {
		return got, fmt.Errorf("archive %s: SHA-256 %s, recorded %s", want.Path, got.SHA256, want.SHA256)
	}
	if want.Size != 0 && got.Size != want.Size {
		return got, fmt.Errorf("archive %s: %d bytes, recorded %d", want.Path, got.Size, want.Size)
	}
	return got, nil
}

// Extract verifies the archive against want, then writes the entries of
// one top-level folder (from) to out as a plain tar with that folder
// renamed to to. It returns the number of entries written.
func Extract(dir string, want Info, from, to string, out io.Writer) (int, error) {
	if _, err := Verify(dir, want); err != nil {
		return 0, err
	}
	f, err := os.Open(filepath.Join(dir, want.Path))
	if err != nil {
		return 0, fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	tw := tar.NewWriter(out)
	n, err := walk(f, tw, from+"\x00"+to)
	if err != nil {
		return n, err
	}
	return n, tw.Close()
}

// walk reads a gzip tar; with tw set it copies the entries under one
// folder, renamed (rename is "from\x00to").
func walk(r io.Reader, tw *tar.Writer, rename string) (int, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return 0, err
	}
	tr := tar.NewReader(gz)
	from, to, _ := strings.Cut(rename, "\x00")
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, err
		}
		if tw == nil {
			if _, err := io.Copy(io.Discard, tr); err != nil {
				return n, err
			}
			n++
			continue
		}
		if h.Name != from && h.Name != from+"/" && !strings.HasPrefix(h.Name, from+"/") {
			continue
		}
		h.Name = rebase(h.Name, to)
		if err := tw.WriteHeader(h); err != nil {
			return n, err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return n, err
		}
		n++
	}
	// Reading to EOF makes gzip verify its trailer (CRC-32 and length).
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return n, err
	}
	return n, gz.Close()
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

var _ app.Archives = Folder("")
