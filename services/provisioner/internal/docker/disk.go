package docker

import (
	"context"
	"fmt"
	"strings"
	"time"

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
//
// Such engines also refuse a disk-usage call while any other is running
// (another provisioner, `docker system df`, a monitoring agent): the call
// is retried, all within Options.DiskBusyWait. If the engine stays busy,
// the writable layers are still fresh and the homes are the last figures
// measured, returned with an error wrapping app.ErrHomeStale.
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
	homes, err := r.homeSizes(ctx)
	if err != nil {
		homes = r.lastHomes()
		err = fmt.Errorf("%w: %w", app.ErrHomeStale, err)
	} else {
		r.rememberHomes(homes)
	}
	for id, size := range homes {
		u := out[id]
		u.Home = size
		out[id] = u
	}
	return out, err
}

// homeSizes is the size of every home volume of this installation, by
// workspace id. A busy engine is asked again after 50 ms, doubling to 1 s.
func (r *Runtime) homeSizes(ctx context.Context) (map[string]int64, error) {
	// The engine's answer is bounded too: Docker 20.10 sizes every
	// container on the engine for it, and on fuse-overlayfs (a naive diff
	// of each container's whole tree) that took minutes beside a build.
	ctx, cancel := context.WithTimeout(ctx, r.o.DiskBusyWait)
	defer cancel()
	deadline, _ := ctx.Deadline()
	var du types.DiskUsage
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		var err error
		du, err = r.cli.DiskUsage(ctx, types.DiskUsageOptions{Types: []types.DiskUsageObject{types.VolumeObject}})
		if err == nil {
			break
		}
		if !diskUsageBusy(err) || time.Now().Add(wait).After(deadline) {
			return nil, fmt.Errorf("volume disk usage: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("volume disk usage: %w", ctx.Err())
		case <-time.After(wait):
		}
	}
	homes := map[string]int64{}
	for _, v := range du.Volumes {
		if v == nil {
			continue
		}
		id := v.Labels[LabelID]
		if id == "" || v.Labels[LabelInstallation] != r.o.Installation || v.Name != VolumeName(id) || v.UsageData == nil || v.UsageData.Size < 0 {
			continue // not ours, or a driver that cannot tell (-1)
		}
		homes[id] = v.UsageData.Size
	}
	return homes, nil
}

// diskUsageBusy: the engine (before Docker 23) runs one disk-usage call at
// a time and refuses the others.
func diskUsageBusy(err error) bool {
	return err != nil && strings.Contains(err.Error(), "disk usage operation is already running")
}

func (r *Runtime) rememberHomes(homes map[string]int64) {
	r.homeMu.Lock()
	defer r.homeMu.Unlock()
	if r.homes == nil {
		r.homes = map[string]map[string]int64{}
	}
	r.homes[r.o.Installation] = homes
}

func (r *Runtime) lastHomes() map[string]int64 {
	r.homeMu.Lock()
	defer r.homeMu.Unlock()
	return r.homes[r.o.Installation] // read only: rememberHomes replaces it whole
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
