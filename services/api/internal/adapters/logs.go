package adapters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/services/api/internal/app"
)

// Logs asks provisioners for containers' output over core NATS
// request/reply (events.LogsSubject).
type Logs struct {
	NC      *nats.Conn
	Timeout time.Duration // default 15s
}

var _ app.ContainerLogs = Logs{}

// Logs sends req and waits for one provisioner's reply; none listening
// (or none answering in time) is app.ErrEngineUnavailable.
func (a Logs) Logs(ctx context.Context, req events.LogsRequest) (events.LogsReply, error) {
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	b, err := json.Marshal(req)
	if err != nil {
		return events.LogsReply{}, err
	}
	m, err := a.NC.RequestWithContext(ctx, events.LogsSubject, b)
	switch {
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return events.LogsReply{}, fmt.Errorf("%w: %w", app.ErrEngineUnavailable, err)
	case err != nil:
		return events.LogsReply{}, fmt.Errorf("logs request: %w", err)
	}
	var reply events.LogsReply
	if err := json.Unmarshal(m.Data, &reply); err != nil {
		return events.LogsReply{}, fmt.Errorf("logs reply: %w", err)
	}
	return reply, nil
}
