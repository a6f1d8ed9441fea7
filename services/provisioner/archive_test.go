package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/dockertest"
	"github.com/berthdev/berth/services/provisioner/internal/docker"
)

// homeTar is a tree with what a real home holds: nested folders, dot files,
// binary content, private modes, a symlink, an empty file.
func homeTar(t *testing.T) io.Reader {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	bin := make([]byte, 300_000)
	for i := range bin {
		bin[i] = byte(i*7 + i/251)
	}
	add := func(h *tar.Header, body []byte) {
		h.Uid, h.Gid, h.ModTime = 1000, 1000, time.Unix(1760000000, 0)
		h.Size = int64(len(body))
		require.NoError(t, tw.WriteHeader(h))
		_, err := tw.Write(body)
		require.NoError(t, err)
	}
	add(&tar.Header{Name: "src/", Typeflag: tar.TypeDir, Mode: 0o750}, nil)
	add(&tar.Header{Name: "src/main.go", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("package main\n\nfunc main() {}\n"))
	add(&tar.Header{Name: ".ssh/", Typeflag: tar.TypeDir, Mode: 0o700}, nil)
	add(&tar.Header{Name: ".ssh/id_ed25519", Typeflag: tar.TypeReg, Mode: 0o600}, []byte("not a real key\n"))
	add(&tar.Header{Name: "data.bin", Typeflag: tar.TypeReg, Mode: 0o640}, bin)
	add(&tar.Header{Name: "empty", Typeflag: tar.TypeReg, Mode: 0o644}, nil)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "latest", Typeflag: tar.TypeSymlink, Linkname: "src/main.go", Uid: 1000, Gid: 1000, ModTime: time.Unix(1760000000, 0)}))
	require.NoError(t, tw.Close())
	return &b
}

// snapshot lists every entry of the container's home volume: name, type,
// mode, owner, size, link target and content hash. The project bind mount
// is not part of the volume and is left out.
func snapshot(t *testing.T, w *world, cid string) []string {
	rc, _, err := w.cli.CopyFromContainer(context.Background(), cid, "/home/coder")
	require.NoError(t, err)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var out []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if strings.HasPrefix(h.Name, "coder/project/") && h.Name != "coder/project/" {
			continue
		}
		sum := sha256.New()
		_, err = io.Copy(sum, tr)
		require.NoError(t, err)
		out = append(out, fmt.Sprintf("%s type=%c mode=%o owner=%d:%d size=%d link=%s sha=%s",
			h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Size, h.Linkname, hex.EncodeToString(sum.Sum(nil))[:16]))
	}
	sort.Strings(out)
	return out
}

func sha256File(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestArchiveDeleteRestoreRoundTrip: a stopped workspace is archived
// (verified, size and checksum recorded), deleted (container and volume
// gone, archive kept) and restored: the home volume is byte-identical and
// the workspace starts with its files.
func TestArchiveDeleteRestoreRoundTrip(t *testing.T) {
	w := newWorld(t)
	archives := t.TempDir()
	w.startProvisioner("--archive-dir", archives)
	id := w.create("keeper", dockertest.DemoImage, true, "course-101")
	ws := w.waitStatus(id, events.StatusRunning, 30*time.Second)
	ctx := context.Background()
	require.NoError(t, w.cli.CopyToContainer(ctx, ws.Endpoint.ContainerID, "/home/coder", homeTar(t), container.CopyToContainerOptions{}))
	res, err := http.PostForm("http://"+ws.Endpoint.IP+":8080/workspace-keeper/files", url.Values{"name": {"proof.txt"}, "content": {"written by the IDE"}})
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 201, res.StatusCode)

	w.request(id, &events.StopRequested{})
	w.waitStatus(id, events.StatusStopped, 30*time.Second)
	before := snapshot(t, w, ws.Endpoint.ContainerID)
	require.Greater(t, len(before), 8)

	w.request(id, &events.ArchiveRequested{})
	ws = w.waitStatus(id, events.StatusArchived, 60*time.Second)
	require.NotNil(t, ws.Archive)
	file := filepath.Join(archives, ws.Archive.Path)
	fi, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, fi.Size(), ws.Archive.SizeBytes)
	assert.Equal(t, sha256File(t, file), ws.Archive.SHA256)
	assert.Contains(t, ws.Reason, "verified")

	w.request(id, &events.DeleteRequested{})
	w.waitStatus(id, events.StatusDeleted, 30*time.Second)
	assert.Empty(t, w.containers(id))
	_, err = w.cli.VolumeInspect(ctx, docker.VolumeName(id))
	assert.Error(t, err, "the volume goes once a verified archive holds it")
	assert.FileExists(t, file)

	// A damaged archive is refused: restore_failed, still deleted, no
	// half-filled volume, the archive left as it was.
	good, err := os.ReadFile(file)
	require.NoError(t, err)
	bad := bytes.Clone(good)
	bad[len(bad)/2] ^= 0xff
	require.NoError(t, os.WriteFile(file, bad, 0o600))
	w.request(id, &events.RestoreRequested{})
	ws = w.waitStatus(id, events.StatusDeleted, 60*time.Second)
	assert.Equal(t, events.TypeRestoreFailed, w.lastType(id))
	assert.Contains(t, ws.LastError, "cannot be restored")
	_, err = w.cli.VolumeInspect(ctx, docker.VolumeName(id))
	assert.Error(t, err, "no volume after a failed restore")
	require.NoError(t, os.WriteFile(file, good, 0o600))

	w.request(id, &events.RestoreRequested{})
	ws = w.waitStatus(id, events.StatusStopped, 60*time.Second)
	assert.Equal(t, events.TypeRestored, w.lastType(id))
	w.request(id, &events.StartRequested{})
	ws = w.waitStatus(id, events.StatusRunning, 30*time.Second)
	_, body := httpGet(t, "http://"+ws.Endpoint.IP+":8080/files/proof.txt")
	assert.Equal(t, "written by the IDE", body)
	w.request(id, &events.StopRequested{})
	w.waitStatus(id, events.StatusStopped, 30*time.Second)
	assert.Equal(t, before, snapshot(t, w, ws.Endpoint.ContainerID), "restored home differs from the archived one")
	assert.Empty(t, w.helpers(), "volume helpers are removed")
}

// TestArchiveFailureKeepsEverything: the archive folder cannot be written:
// archive_failed is recorded with the reason, the workspace is stopped as
// before, its container and volume untouched, no file left behind.
func TestArchiveFailureKeepsEverything(t *testing.T) {
	w := newWorld(t)
	archives := unwritableDir(t)
	w.startProvisioner("--archive-dir", archives)
	id := w.create("stuck", dockertest.DemoImage, true)
	ws := w.waitStatus(id, events.StatusRunning, 30*time.Second)
	cid := ws.Endpoint.ContainerID
	w.request(id, &events.StopRequested{})
	w.waitStatus(id, events.StatusStopped, 30*time.Second)
	before := snapshot(t, w, cid)

	w.request(id, &events.ArchiveRequested{})
	deadline := time.Now().Add(30 * time.Second)
	for w.lastType(id) != events.TypeArchiveFailed {
		require.True(t, time.Now().Before(deadline), "no archive_failed recorded; last event %s", w.lastType(id))
		time.Sleep(25 * time.Millisecond)
	}
	ws = w.state(id)
	assert.Equal(t, events.StatusStopped, ws.Status)
	assert.Contains(t, ws.LastError, "archive")
	assert.Nil(t, ws.Archive)
	require.Len(t, w.containers(id), 1)
	assert.Equal(t, cid, w.containers(id)[0].ID)
	assert.Equal(t, before, snapshot(t, w, cid), "data untouched")
	assert.Empty(t, w.helpers())
}

// unwritableDir is an archive folder the provisioner cannot write: a
// read-only folder, or (as root, whom permissions do not stop) a path
// below a regular file.
func unwritableDir(t *testing.T) string {
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		blocker := filepath.Join(dir, "not-a-folder")
		require.NoError(t, os.WriteFile(blocker, nil, 0o600))
		return filepath.Join(blocker, "archives")
	}
	require.NoError(t, os.Chmod(dir, 0o500))
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	return dir
}

func (w *world) lastType(id string) events.Type {
	evs, err := w.log.Read(context.Background(), id)
	require.NoError(w.t, err)
	return evs[len(evs)-1].Type
}

func (w *world) helpers() []container.Summary {
	var out []container.Summary
	for _, id := range w.ids {
		list, err := w.cli.ContainerList(context.Background(), container.ListOptions{All: true})
		require.NoError(w.t, err)
		for _, c := range list {
			for _, n := range c.Names {
				if strings.Contains(n, "berth-volume-"+id) {
					out = append(out, c)
				}
			}
		}
	}
	return out
}

// TestArchiveWithProjects: with BERTH_ARCHIVE_PROJECTS the project folders
// are in the archive under projects/, beside home/.
func TestArchiveWithProjects(t *testing.T) {
	w := newWorld(t)
	archives := t.TempDir()
	w.startProvisioner("--archive-dir", archives, "--archive-projects")
	id := w.create("withproj", dockertest.DemoImage, true, "course-101")
	w.waitStatus(id, events.StatusRunning, 30*time.Second)
	w.request(id, &events.StopRequested{})
	w.waitStatus(id, events.StatusStopped, 30*time.Second)
	w.request(id, &events.ArchiveRequested{})
	ws := w.waitStatus(id, events.StatusArchived, 60*time.Second)

	f, err := os.Open(filepath.Join(archives, ws.Archive.Path))
	require.NoError(t, err)
	defer f.Close()
	gz, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	found := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		found[h.Name] = string(b)
	}
	assert.Equal(t, "welcome", found["projects/course-101/README.md"])
	assert.Contains(t, found, "home/")
	for name := range found {
		assert.True(t, strings.HasPrefix(name, "home/") || strings.HasPrefix(name, "projects/"), name)
	}
}
