package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // FROM-scratch images have no zoneinfo

	"github.com/nats-io/nats.go"

	"github.com/berthdev/berth/pkg/platform/config"
	"github.com/berthdev/berth/pkg/platform/natsbus"
	"github.com/berthdev/berth/pkg/platform/telemetry"
)

// RunFunc is a service's composition root: it runs until ctx ends.
// onReady (tests) learns the bound HTTP address once the service is ready.
type RunFunc func(ctx context.Context, args []string, out io.Writer, onReady func(addr string)) error

// Main runs a service until SIGINT/SIGTERM and exits non-zero on error.
func Main(name string, run RunFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr, nil)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// Process is what every Berth service starts with: logs, telemetry, its
// HTTP listener and its NATS connection.
type Process struct {
	Log      *slog.Logger
	Tel      *telemetry.Telemetry
	Listener net.Listener
	NATS     *nats.Conn
}

// Start sets up a process for service name. Close releases it.
func Start(name string, out io.Writer, c config.Common, httpAddr, natsURL string) (*Process, error) {
	log, err := telemetry.NewLogger(out, c.LogFormat, c.LogLevel, name)
	if err != nil {
		return nil, err
	}
	tel, err := telemetry.New(name)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		_ = tel.Shutdown(context.Background())
		return nil, fmt.Errorf("listen %s: %w", httpAddr, err)
	}
	id := natsbus.Identity{User: c.NATSUser, Password: c.NATSPassword, PasswordFile: c.NATSPasswordFile,
		CAFile: c.NATSCAFile, CertFile: c.NATSCertFile, KeyFile: c.NATSKeyFile}
	if id.User == "" {
		id.User = name
	}
	if id.Password == "" && id.PasswordFile == "" {
		id.PasswordFile = natsbus.PasswordFile("data", id.User)
	}
	nc, err := natsbus.Connect(natsURL, "berth-"+name, id, log)
	if err != nil {
		ln.Close()
		_ = tel.Shutdown(context.Background())
		return nil, err
	}
	return &Process{Log: log, Tel: tel, Listener: ln, NATS: nc}, nil
}

// Close releases what Start opened (the listener is closed by the HTTP
// server's shutdown).
func (p *Process) Close() {
	p.NATS.Close()
	_ = p.Tel.Shutdown(context.Background())
}
