// Package dockertest gives tests the real Docker Engine: it skips (or, with
// BERTH_REQUIRE_DOCKER=1 as in CI, fails) when no engine answers, and builds
// the local images with `make images` when they are missing.
package dockertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

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
