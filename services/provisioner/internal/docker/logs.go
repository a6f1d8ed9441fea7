package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/berthdev/berth/pkg/events"
)

// ErrNoContainer: the workspace has no container on this engine (never
// started, or removed), so it has no logs.
var ErrNoContainer = errors.New("the workspace has no container")

// Logs returns the last tail lines the workspace's container wrote
// (stdout and stderr in the order the engine kept them), at most
// events.MaxLogBytes of them, the newest kept; truncated says some were
// left out.
func (r *Runtime) Logs(ctx context.Context, id string, tail int, timestamps bool) (logs []byte, truncated bool, err error) {
	if err := r.scoped(ctx); err != nil {
		return nil, false, err
	}
	c, err := r.find(ctx, id)
	if err != nil {
		return nil, false, err
	}
	if c == nil {
		return nil, false, ErrNoContainer
	}
	rc, err := r.cli.ContainerLogs(ctx, c.ID, logsOptions(tail, timestamps))
	if err != nil {
		return nil, false, fmt.Errorf("logs of %s: %w", id, err)
	}
	return readLogs(rc, id)
}

func logsOptions(tail int, timestamps bool) container.LogsOptions {
	return container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(tail), Timestamps: timestamps}
}

// readLogs demultiplexes an engine log stream and closes it.
func readLogs(rc io.ReadCloser, id string) ([]byte, bool, error) {
	defer rc.Close()
	// Only the newest bytes are held: a tail of huge lines never sits in
	// memory whole.
	last := &keepLast{max: events.MaxLogBytes}
	if _, err := stdcopy.StdCopy(last, last, rc); err != nil {
		return nil, false, fmt.Errorf("logs of %s: %w", id, err)
	}
	out := last.bytes()
	if last.dropped {
		if i := bytes.IndexByte(out, '\n'); i >= 0 { // start on a whole line
			out = out[i+1:]
		}
	}
	return out, last.dropped, nil
}

// keepLast keeps the last max bytes written to it.
type keepLast struct {
	buf     []byte
	max     int
	dropped bool
}

func (k *keepLast) Write(p []byte) (int, error) {
	k.buf = append(k.buf, p...)
	if over := len(k.buf) - k.max; over > 0 && len(k.buf) >= 2*k.max {
		k.buf = append(k.buf[:0], k.buf[over:]...)
		k.dropped = true
	}
	return len(p), nil
}

// bytes returns what is kept (at most max).
func (k *keepLast) bytes() []byte {
	if over := len(k.buf) - k.max; over > 0 {
		k.buf, k.dropped = k.buf[over:], true
	}
	return k.buf
}
