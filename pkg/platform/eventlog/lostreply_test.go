package eventlog_test

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
)

// deafProxy relays one client's connection to a NATS server and, once
// deafened, drops everything the server sends back while the client's
// requests still get through: a reply lost on its way, as when the
// stream's leader is killed after it took a request.
type deafProxy struct {
	addr string
	deaf atomic.Bool
}

func newDeafProxy(t *testing.T, target string) *deafProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	p := &deafProxy{addr: ln.Addr().String()}
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				_ = client.Close()
				return
			}
			t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
			go func() { _, _ = io.Copy(server, client) }()
			go func() {
				buf := make([]byte, 32<<10)
				for {
					n, err := server.Read(buf)
					if err != nil {
						return
					}
					if !p.deaf.Load() {
						if _, err := client.Write(buf[:n]); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return p
}

// TestLostReplyDoesNotHoldTheCaller: an append or a read whose reply never
// comes returns ErrUnavailable after the request timeout, even when the
// caller's context allows an hour (a consumer handler's). Before, it waited
// out the caller's deadline: a provisioner's observation of a workspace
// whose log leader was killed held that workspace for an hour (issue 24,
// TestClusterNodeKilledDuringLaunches stuck "stopping").
func TestLostReplyDoesNotHoldTheCaller(t *testing.T) {
	srv := natstest.Server(t)
	p := newDeafProxy(t, srv.Addr().String())
	nc, err := nats.Connect("nats://"+p.addr, nats.NoReconnect())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	l, err := eventlog.Open(context.Background(), nc, eventlog.Options{RequestTimeout: 300 * time.Millisecond})
	require.NoError(t, err)
	id := uuid.NewString()
	_, err = l.Append(context.Background(), ev(t, id, &events.Created{Name: "alpha", Image: "img", Owner: "alice"}), 0)
	require.NoError(t, err, "answered while the proxy relays")

	p.deaf.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for name, call := range map[string]func() error{
		"append": func() error {
			_, err := l.Append(ctx, ev(t, id, &events.StartRequested{}), 1)
			return err
		},
		"read": func() error { _, err := l.Read(ctx, id); return err },
	} {
		done := make(chan error, 1)
		go func() { done <- call() }()
		select {
		case err := <-done:
			require.ErrorIs(t, err, eventlog.ErrUnavailable, name)
		case <-time.After(30 * time.Second): // 100 times the request timeout
			t.Fatalf("%s still waiting for a reply that never comes", name)
		}
	}
}
