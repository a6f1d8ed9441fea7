package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"

	"github.com/berthdev/berth/services/provisioner/internal/app"
)

// LabelRole marks helper containers; they carry no LabelID, so the
// reconciler never mistakes them for a workspace.
const LabelRole = "berth.role"

// Paths in the volume-access helper container.
const (
	helperHome     = "/" + app.VolumeTree
	helperProjects = "/projects"
)

// helperName is deterministic so a crash leaves at most one helper, which
// the next attempt replaces.
func helperName(id string) string { return "berth-volume-" + id }

// withHelper creates (never starts) a container from the workspace's image
// with the home volume at /data and, if asked, the project folders read-only
// under /projects, runs fn, and removes the container. Docker copies files
// in and out of a created container without running anything in it.
func (r *Runtime) withHelper(ctx context.Context, s app.Spec, projects bool, fn func(cid string) error) error {
	if err := r.scoped(ctx); err != nil {
		return err
	}
	if _, err := r.cli.ImageInspect(ctx, s.Image); cerrdefs.IsNotFound(err) {
		return &app.Failure{Code: "image_missing", Message: fmt.Sprintf("image %s is needed to reach the home volume but is not on this host; an admin must build or pull it", s.Image)}
	} else if err != nil {
		return fmt.Errorf("inspect image %s: %w", s.Image, err)
	}
	name := helperName(s.ID)
	if err := r.cli.ContainerRemove(ctx, name, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove stale helper %s: %w", name, err)
	}
	mounts := []mount.Mount{{Type: mount.TypeVolume, Source: VolumeName(s.ID), Target: helperHome, VolumeOptions: &mount.VolumeOptions{NoCopy: true}}}
	if projects {
		for _, m := range s.Mounts {
			rel := path.Base(m.Target)
			if after, ok := strings.CutPrefix(m.Target, r.o.HomeDir+"/project/"); ok && after != "" {
				rel = after
			}
			mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: path.Join(helperProjects, rel), ReadOnly: true})
		}
	}
	created, err := r.cli.ContainerCreate(ctx,
		&container.Config{Image: s.Image, Entrypoint: []string{"/berth-volume-access-never-started"}, Labels: map[string]string{LabelManaged: "true", LabelRole: "volume-access", LabelInstallation: r.o.Installation}},
		&container.HostConfig{Mounts: mounts, NetworkMode: "none", CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges:true"}},
		nil, nil, name)
	if err != nil {
		return fmt.Errorf("create volume helper for %s: %w", s.Name, err)
	}
	defer func() {
		// Removed even if ctx ended: a helper holds the volume.
		_ = r.cli.ContainerRemove(context.WithoutCancel(ctx), created.ID, container.RemoveOptions{Force: true})
	}()
	return fn(created.ID)
}

// ExportHome hands write the home volume (and, with projects, the project
// folders) as archive sources. The workspace is stopped first so the copy
// is consistent.
func (r *Runtime) ExportHome(ctx context.Context, s app.Spec, projects bool, write func([]app.ArchiveSource) error) error {
	if _, err := r.EnsureStopped(ctx, s.ID); err != nil {
		return err
	}
	if _, err := r.cli.VolumeInspect(ctx, VolumeName(s.ID)); cerrdefs.IsNotFound(err) {
		return &app.Failure{Code: "volume_missing", Message: fmt.Sprintf("home volume %s does not exist; nothing to archive", VolumeName(s.ID))}
	} else if err != nil {
		return fmt.Errorf("inspect volume of %s: %w", s.Name, err)
	}
	return r.withHelper(ctx, s, projects, func(cid string) error {
		open := func(p string) func() (io.ReadCloser, error) {
			return func() (io.ReadCloser, error) {
				rc, _, err := r.cli.CopyFromContainer(ctx, cid, p)
				return rc, err
			}
		}
		sources := []app.ArchiveSource{{Prefix: "home", Open: open(helperHome)}}
		if projects && len(s.Mounts) > 0 {
			sources = append(sources, app.ArchiveSource{Prefix: "projects", Open: open(helperProjects)})
		}
		return write(sources)
	})
}

var errStoppedReading = errors.New("docker stopped reading the archive")

// ImportHome recreates the home volume empty and fills it from the tar
// stream write produces (entries under "data/"). Any existing volume is
// replaced: a restore starts from the archive, never from a half-restored
// volume.
func (r *Runtime) ImportHome(ctx context.Context, s app.Spec, write func(io.Writer) error) error {
	if err := r.scoped(ctx); err != nil {
		return err
	}
	if err := r.cli.ContainerRemove(ctx, helperName(s.ID), container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove stale helper: %w", err)
	}
	if err := r.cli.VolumeRemove(ctx, VolumeName(s.ID), true); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove old volume of %s: %w", s.Name, err)
	}
	labels := r.labels(s)
	if _, err := r.cli.VolumeCreate(ctx, volume.CreateOptions{Name: VolumeName(s.ID), Labels: labels}); err != nil {
		return fmt.Errorf("create volume for %s: %w", s.Name, err)
	}
	err := r.withHelper(ctx, s, false, func(cid string) error {
		pr, pw := io.Pipe()
		werr := make(chan error, 1)
		go func() {
			err := write(pw)
			pw.CloseWithError(err)
			werr <- err
		}()
		err := r.cli.CopyToContainer(ctx, cid, "/", pr, container.CopyToContainerOptions{})
		pr.CloseWithError(errStoppedReading) // unblock the writer if Docker stopped early
		if wErr := <-werr; wErr != nil && !errors.Is(wErr, errStoppedReading) {
			return wErr // the archive's own error (damaged, missing) says more
		}
		if err != nil {
			return fmt.Errorf("copy archive into the volume of %s: %w", s.Name, err)
		}
		return nil
	})
	if err != nil {
		// A half-filled volume is worse than none: the workspace stays
		// deleted, and the next restore starts from the archive again.
		_ = r.cli.VolumeRemove(context.WithoutCancel(ctx), VolumeName(s.ID), true)
	}
	return err
}

// FileModTime returns the modification time of path in a container, and
// false if it does not exist.
func (r *Runtime) FileModTime(ctx context.Context, cid, p string) (time.Time, bool, error) {
	if err := r.connect(ctx); err != nil {
		return time.Time{}, false, err
	}
	st, err := r.cli.ContainerStatPath(ctx, cid, p)
	if cerrdefs.IsNotFound(err) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("stat %s in %s: %w", p, cid[:min(12, len(cid))], err)
	}
	return st.Mtime, true, nil
}
