package docker

import (
	"context"
	"fmt"
	"strings"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/berthdev/berth/services/provisioner/internal/app"
)

// DiskUsage measures every workspace of this installation on this engine:
// the writable layer of its container (one container listing with sizes)
// and its home volume (one disk-usage call for volumes). The engine walks
// the folders to answer, so the watch calls this every BERTH_DISK_INTERVAL,
// not per request. Engines before API 1.42 (Docker 23) ignore the volume
// filter and size images and containers too: slower, still one call.
func (r *Runtime) DiskUsage(ctx context.Context) (map[string]app.DiskUse, error) {
	if err := r.scoped(ctx); err != nil {
		return nil, err
	}
	list, err := r.cli.ContainerList(ctx, container.ListOptions{All: true, Size: true,
		Filters: filters.NewArgs(filters.Arg("label", LabelID), filters.Arg("label", LabelInstallation+"="+r.o.Installation))})
	if err != nil {
		return nil, fmt.Errorf("list workspace containers with sizes: %w", err)
	}
	out := map[string]app.DiskUse{}
	for _, c := range list {
		id := c.Labels[LabelID]
		u := out[id]
		u.Writable += c.SizeRw
		out[id] = u
	}
	du, err := r.cli.DiskUsage(ctx, types.DiskUsageOptions{Types: []types.DiskUsageObject{types.VolumeObject}})
	if err != nil {
		return nil, fmt.Errorf("volume disk usage: %w", err)
	}
	for _, v := range du.Volumes {
		if v == nil {
			continue
		}
		id := v.Labels[LabelID]
		if id == "" || v.Labels[LabelInstallation] != r.o.Installation || v.Name != VolumeName(id) || v.UsageData == nil || v.UsageData.Size < 0 {
			continue // not ours, or a driver that cannot tell (-1)
		}
		u := out[id]
		u.Home = v.UsageData.Size
		out[id] = u
	}
	return out, nil
}

// RootDir is the engine's data folder on its host (DockerRootDir).
func (r *Runtime) RootDir(ctx context.Context) (string, error) {
	if err := r.connect(ctx); err != nil {
		return "", err
	}
	info, err := r.cli.Info(ctx)
	if err != nil {
		return "", fmt.Errorf("docker info: %w", err)
	}
	return info.DockerRootDir, nil
}

// hardLimit reports whether the engine's storage driver can bound a
// container's writable layer (StorageOpt size), asking the engine once.
func (r *Runtime) hardLimit(ctx context.Context) bool {
	if r.o.noHardLimit {
		return false
	}
	r.limitMu.Lock()
	defer r.limitMu.Unlock()
	if !r.limitKnown {
		info, err := r.cli.Info(ctx)
		if err != nil {
			return false // asked again next time
		}
		r.limitKnown, r.limitOK = true, HardLimitSupported(info.Driver, info.DriverStatus)
	}
	return r.limitOK
}

func (r *Runtime) disableHardLimit() {
	r.limitMu.Lock()
	defer r.limitMu.Unlock()
	r.limitKnown, r.limitOK = true, false
}

// HardLimitSupported: which storage drivers take a per-container size
// (docs/security.md, Disk). overlay2 only over xfs, and only if it is
// mounted with pquota, which the engine's info does not show: a refused
// create turns the limit off (storageOptRefused). fuse-overlayfs, vfs
// without quotas and the containerd snapshotters have none.
func HardLimitSupported(driver string, status [][2]string) bool {
	switch driver {
	case "btrfs", "zfs":
		return true
	case "overlay2":
		for _, kv := range status {
			if kv[0] == "Backing Filesystem" {
				return kv[1] == "xfs"
			}
		}
	}
	return false
}

// storageOptRefused: the engine's storage driver refused the size option
// ("--storage-opt is supported only for overlay over xfs with 'pquota'
// mount option", "--storage-opt is not supported").
func storageOptRefused(err error) bool {
	return err != nil && strings.Contains(err.Error(), "storage-opt")
}
