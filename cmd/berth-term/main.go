// Command berth-term is Berth's browser terminal: the IDE of the
// berth/workspace-debian image. It serves a page with term.js (the xterm
// emulator of Debian's libjs-term.js, from the image; bookworm's
// libjs-xterm is a stub that loads nothing) under the workspace's base
// path, and a
// websocket that runs a login shell on a pseudo-terminal in the user's
// home. While a terminal is open it touches the heartbeat file, which the
// provisioner reads as activity.
package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	s := &server{
		name:      env("BERTH_WORKSPACE_NAME", "workspace"),
		base:      strings.TrimRight(env("BERTH_BASE_PATH", ""), "/"),
		home:      env("HOME", "/home/coder"),
		shell:     env("BERTH_TERM_SHELL", "/bin/bash"),
		termJS:    env("BERTH_TERM_JS", "/usr/share/javascript/term.js/term.js"),
		heartbeat: env("BERTH_HEARTBEAT_FILE", "/home/coder/.local/share/code-server/heartbeat"),
		maxTerms:  8,
		beat:      30 * time.Second,
		log:       slog.New(slog.NewJSONHandler(os.Stderr, nil)),
	}
	addr := ":" + env("PORT", "8080")
	srv := &http.Server{Addr: addr, Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go s.heartbeats(ctx)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		s.closeAll() // websockets are hijacked: Shutdown does not end them
	}()
	s.log.Info("berth-term listening", "addr", addr, "name", s.name, "base", s.base, "shell", s.shell)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("serve", "err", err)
		os.Exit(1)
	}
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
