// Package natsbus starts the embedded NATS server and connects services to
// NATS, embedded or external.
package natsbus

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/berthdev/berth/pkg/events"
)

// EmbeddedOptions configure the in-process NATS server.
type EmbeddedOptions struct {
	// Listen is host:port for clients; port -1 picks a free port (tests).
	Listen string
	// StoreDir is where JetStream keeps its file store.
	StoreDir string
	// ServerName names the server in logs and cluster views.
	ServerName string
	// Users are the only clients let in (see Users); none: no
	// authentication (tests' own servers only).
	Users []*server.User
}

// Embedded is the in-process server and the options it runs with, so its
// users can change while it runs (registered systems).
type Embedded struct {
	*server.Server
	mu   sync.Mutex
	opts *server.Options
}

// SetUsers replaces who may connect, keeping every other setting; the
// server drops the connections of users that are gone.
func (e *Embedded) SetUsers(users []*server.User) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	next := e.opts.Clone()
	next.Users = users
	if err := e.ReloadOptions(next); err != nil {
		return fmt.Errorf("reload nats users: %w", err)
	}
	e.opts = next
	return nil
}

// StartEmbedded starts a NATS server with JetStream on a file store and
// waits until it accepts connections.
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("embedded nats listen address %q: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("embedded nats port %q: %w", portStr, err)
	}
	name := o.ServerName
	if name == "" {
		name = "berth-embedded"
	}
	opts := &server.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoSigs:     true,
		NoLog:      true,
		Users:      o.Users,
	}
	srv, err := server.NewServer(opts.Clone())
	if err != nil {
		return nil, fmt.Errorf("create embedded nats: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded nats on %s not ready after 10s (port in use?)", o.Listen)
	}
	return &Embedded{Server: srv, opts: opts}, nil
}

// Connect dials NATS and keeps reconnecting forever: a service whose bus is
// down stays up, reports not-ready, and resumes when the bus is back.
func Connect(url, clientName string, id Identity, log *slog.Logger) (*nats.Conn, error) {
	opts := id.connectOptions()
	if id.User != "" {
		// Replies and deliveries come to the identity's own prefix, which
		// no other service identity may read (see Permissions).
		opts = append(opts, nats.CustomInboxPrefix(events.InboxPrefix(id.User)))
	}
	nc, err := nats.Connect(url, append(opts,
		nats.Name(clientName),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		// Keep trying after refused credentials too: under make run the
		// password file appears once the API has started the bus.
		nats.IgnoreAuthErrorAbort(),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("nats reconnected", "url", c.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("nats error", "err", err) // permission violations among them
		}),
	)...)
	if err != nil {
		return nil, fmt.Errorf("connect nats %s: %w", url, err)
	}
	return nc, nil
}

// Ready reports whether the connection is up, as a readiness check.
func Ready(nc *nats.Conn) func(context.Context) error {
	return func(context.Context) error {
		if !nc.IsConnected() {
			return fmt.Errorf("nats %s", nc.Status())
		}
		return nil
	}
}
