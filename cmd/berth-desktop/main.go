// Command berth-desktop serves the berth/workspace-desktop image's desktop
// in the browser: Debian's noVNC under the workspace's base path, a
// websocket carried to the image's TigerVNC server (which listens on the
// container's loopback only), and the time of the last input a person made
// through it (keys, pointer, paste) at /api/activity, which the
// provisioner reads as activity. As the image's PID 1 it also reaps
// orphaned processes of the desktop session.
package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	s := &server{
		base:     strings.TrimRight(env("BERTH_BASE_PATH", ""), "/"),
		vnc:      env("BERTH_VNC_ADDR", "127.0.0.1:5901"),
		novnc:    env("BERTH_NOVNC_DIR", "/usr/share/novnc"),
		maxConns: 8,
		log:      log,
		now:      time.Now,
	}
	if _, err := os.Stat(filepath.Join(s.novnc, "vnc.html")); err != nil {
		log.Error("noVNC is missing", "dir", s.novnc, "err", err)
		os.Exit(1)
	}
	addr := ":" + env("PORT", "8080")
	srv := &http.Server{Addr: addr, Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Getpid() == 1 {
		go reap(ctx)
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		s.closeAll() // websockets are hijacked: Shutdown does not end them
	}()
	log.Info("berth-desktop listening", "addr", addr, "base", s.base, "vnc", s.vnc)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
}

// reap waits for every child that ends: the desktop session's processes
// are re-parented to PID 1 when their parent exits, and would otherwise
// stay zombies (this program starts no child of its own to wait for).
func reap(ctx context.Context) {
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGCHLD)
	defer signal.Stop(sig)
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
		}
		for {
			var st syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &st, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
