package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"

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
		users, fingerprint, refused, err := systemUsers(passwords, k, hashes())
		switch {
		case err != nil:
			log.Warn("registered systems' bus users not refreshed", "err", err)
		case fingerprint != applied:
			for _, name := range refused {
				log.Error("registered system's stored credential is not a bcrypt hash: it is let in no more until an admin registers it again",
					"code", "credential_malformed", "system", name)
			}
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

// systemUsers is the user list the bus should have, a fingerprint of it
// to tell a change, and the systems whose stored credential was refused.
func systemUsers(passwords map[string]string, k *core, hashes map[string]string) ([]*server.User, string, []string, error) {
	regs, err := k.svc.Systems(app.Caller{Admin: true})
	if err != nil {
		return nil, "", nil, err
	}
	var systems []*server.User
	var lines, refused, answered []string
	for _, r := range regs {
		h, ok := hashes[r.Name]
		switch {
		case !ok:
		case !bcryptShaped(h):
			refused = append(refused, r.Name)
			lines = append(lines, fmt.Sprintf("%s refused\n", r.Name))
		default:
			systems = append(systems, natsbus.SystemUser(r.Name, h, r.ReadEvents))
			answered = append(answered, r.Name)
			lines = append(lines, fmt.Sprintf("%s %s %t\n", r.Name, h, r.ReadEvents))
		}
	}
	slices.Sort(lines)
	// The API may answer only the systems let in (their inboxes).
	users := append(natsbus.Users(passwords, answered...), systems...)
	return users, strings.Join(lines, ""), refused, nil
}

// bcryptShaped tells whether a stored credential is a bcrypt hash, the only
// thing the API stores there. The bus takes any other value as the password
// in clear text, so a value someone else wrote (issue 23: a forged reply
// whose text the sender knows) would let them in as that system.
func bcryptShaped(h string) bool {
	if len(h) != 60 {
		return false
	}
	_, err := bcrypt.Cost([]byte(h))
	return err == nil
}
