package docker

import (
	"context"
	"errors"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/berthdev/berth/pkg/platform/dockertest"
)

func TestHardLimitSupported(t *testing.T) {
	xfs := [][2]string{{"Backing Filesystem", "xfs"}, {"Supports d_type", "true"}}
	ext4 := [][2]string{{"Backing Filesystem", "extfs"}}
	cases := []struct {
		driver string
		status [][2]string
		want   bool
	}{
		{"overlay2", xfs, true}, {"overlay2", ext4, false}, {"overlay2", nil, false},
		{"btrfs", nil, true}, {"zfs", nil, true},
		{"fuse-overlayfs", nil, false}, {"vfs", nil, false}, {"overlayfs", nil, false}, {"", nil, false},
	}
	for _, c := range cases {
		if got := HardLimitSupported(c.driver, c.status); got != c.want {
			t.Errorf("%s %v: %v, want %v", c.driver, c.status, got, c.want)
		}
	}
	for msg, want := range map[string]bool{
		"--storage-opt is supported only for overlay over xfs with 'pquota' mount option": true,
		"--storage-opt is not supported": true,
		"No such image":                  false,
	} {
		if got := storageOptRefused(errors.New(msg)); got != want {
			t.Errorf("%q: %v, want %v", msg, got, want)
		}
	}
}

// TestThisEngineHardLimit: what the detection says of the real engine
// holds. Where it finds no size limit, the engine refuses one in a way
// storageOptRefused recognises (the fallback that creates the container
// without it); where it finds one, the engine either takes it or refuses
// it recognisably (xfs without pquota).
func TestThisEngineHardLimit(t *testing.T) {
	cli := dockertest.Client(t)
	dockertest.EnsureImages(t, cli)
	ctx := context.Background()
	info, err := cli.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	supported := HardLimitSupported(info.Driver, info.DriverStatus)
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: dockertest.DemoImage, Labels: map[string]string{LabelManaged: "test"}},
		&container.HostConfig{StorageOpt: map[string]string{"size": "64m"}}, nil, nil, "")
	if err == nil {
		_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
		if !supported {
			t.Fatalf("storage driver %s took a size limit the detection says it lacks", info.Driver)
		}
		t.Logf("storage driver %s limits the writable layer", info.Driver)
		return
	}
	if !storageOptRefused(err) {
		t.Fatalf("storage driver %s refused the size limit unrecognisably: %v", info.Driver, err)
	}
	t.Logf("storage driver %s (supported by detection: %v) has no size limit: %v", info.Driver, supported, err)
}
