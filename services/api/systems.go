package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/berthdev/berth/pkg/platform/natsbus"
	"github.com/berthdev/berth/services/api/internal/app"
)

// keepSystemUsers keeps the embedded bus's users equal to Berth's own
// identities plus every registered system that has a credential: a
// registration lets its system in within a second, a revocation drops its
// connections. An external NATS is the operator's to configure
// (docs/intake.md).
func keepSystemUsers(ctx context.Context, emb *natsbus.Embedded, passwords map[string]string, k *core, log *slog.Logger) {
	hashes, err := k.creds.Watch(ctx)
	if err != nil {
		log.Error("registered systems cannot connect: their credentials are not readable", "err", err)
		return
	}
	// The checks read memory only (the projection, the watched bucket).
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	applied := ""
	for {
		users, fingerprint, err := systemUsers(passwords, k, hashes())
		switch {
		case err != nil:
			log.Warn("registered systems' bus users not refreshed", "err", err)
		case fingerprint != applied:
			if err := emb.SetUsers(users); err != nil {
				log.Error("registered systems' bus users not applied", "err", err)
			} else {
				applied = fingerprint
				log.Info("bus users refreshed", "systems", strings.Count(fingerprint, "\n"))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// systemUsers is the user list the bus should have, and a fingerprint of
// it to tell a change.
func systemUsers(passwords map[string]string, k *core, hashes map[string]string) ([]*server.User, string, error) {
	regs, err := k.svc.Systems(app.Caller{Admin: true})
	if err != nil {
		return nil, "", err
	}
	users := natsbus.Users(passwords)
	var lines []string
	for _, r := range regs {
		if h, ok := hashes[r.Name]; ok {
			users = append(users, natsbus.SystemUser(r.Name, h, r.ReadEvents))
			lines = append(lines, fmt.Sprintf("%s %s %t\n", r.Name, h, r.ReadEvents))
		}
	}
	slices.Sort(lines)
	return users, strings.Join(lines, ""), nil
}
