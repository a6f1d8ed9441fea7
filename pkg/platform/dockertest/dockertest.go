// Package dockertest gives tests the real Docker Engine: it skips (or, with
// BERTH_REQUIRE_DOCKER=1 as in CI, fails) when no engine answers, and builds
// the local images with `make images` when they are missing.
package dockertest

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
)

// DemoImage is the image tests launch.
const DemoImage = "berth/workspace-demo:latest"

// Client returns a Docker client or skips the test with a clear message.
func Client(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = cli.Ping(ctx)
	}
	if err != nil {
		if os.Getenv("BERTH_REQUIRE_DOCKER") == "1" {
			t.Fatalf("Docker Engine required (BERTH_REQUIRE_DOCKER=1) but not reachable: %v", err)
		}
		t.Skipf("skipping: no Docker Engine reachable (%v); set BERTH_REQUIRE_DOCKER=1 to make this a failure", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

var buildOnce sync.Once
var buildErr error

// EnsureImages builds the local images with `make images` if the demo image
// is missing (once per test binary).
func EnsureImages(t testing.TB, cli *client.Client) {
	t.Helper()
	if _, err := cli.ImageInspect(context.Background(), DemoImage); err == nil {
		return
	}
	buildOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			buildErr = err
			return
		}
		// go test runs packages in parallel processes: one builds, the
		// others wait for it and find the images (several builds at once
		// on a fresh machine each compiled Traefik and ran past the tests'
		// timeout).
		unlock, err := lockBuild(root)
		if err != nil {
			buildErr = err
			return
		}
		defer unlock()
		if _, err := cli.ImageInspect(context.Background(), DemoImage); err == nil {
			return
		}
		cmd := exec.Command("make", "-C", root, "images")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = &buildError{err: err, out: string(out)}
		}
	})
	if buildErr != nil {
		t.Fatalf("make images: %v", buildErr)
	}
}

// lockBuild takes the repository's image-build lock (.cache/images.lock),
// waiting while another process holds it.
func lockBuild(root string) (func(), error) {
	dir := filepath.Join(root, ".cache")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("image build lock: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "images.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("image build lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("image build lock: %w", err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); _ = f.Close() }, nil
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// repoRoot walks up from the working directory to the folder with go.work.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

// ProbeImage carries /usr/local/bin/probe (GET a URL, exit 0 on 200): any
// Berth service image does.
const ProbeImage = "berth/reaper:latest"

// ProbeFrom GETs url from a fresh container on network, as a workspace
// there would, and reports whether it answered 200, with probe's output.
func ProbeFrom(t testing.TB, cli *client.Client, network, url string) (bool, string) {
	t.Helper()
	ctx := context.Background()
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: ProbeImage, Entrypoint: []string{"/usr/local/bin/probe"}, Cmd: []string{url}},
		&container.HostConfig{NetworkMode: container.NetworkMode(network)}, nil, nil, "")
	if err != nil {
		t.Fatalf("create probe container: %v", err)
	}
	defer func() { _ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}) }()
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start probe container: %v", err)
	}
	waitc, errc := cli.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
	var code int64
	select {
	case r := <-waitc:
		code = r.StatusCode
	case err := <-errc:
		t.Fatalf("wait for probe container: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("probe container did not finish")
	}
	rc, err := cli.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("probe logs: %v", err)
	}
	defer rc.Close()
	out, _ := io.ReadAll(rc)
	return code == 0, strings.TrimSpace(string(out))
}
