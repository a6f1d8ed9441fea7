package intake

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/services/api/internal/app"
)

// CommandDeadLetters keeps refused commands with their headers.
type CommandDeadLetters interface {
	DeadLetterMsg(ctx context.Context, consumer, subject string, header nats.Header, data []byte, reason string) error
}

// Commands applies intake commands (app.Service.Intake).
type Commands interface {
	Intake(ctx context.Context, system string, header map[string][]string, body []byte) app.IntakeReply
}

// systemsSubject matches every registered system's command subject.
var systemsSubject = events.IntakeSystemSubject("*")

// Workspace subscribes to registered systems' workspace commands (one
// queue group across API replicas). The subject's system token says who
// sent a command: only that system's bus identity may publish there. A
// command with a reply subject gets the reply; a refused one is also
// dead-lettered with its code and reason. Nothing a sender sends stops it.
func Workspace(nc *nats.Conn, cmds Commands, dl CommandDeadLetters, log *slog.Logger) (*nats.Subscription, error) {
	// Commands are handled at once up to workers; beyond that the
	// subscription waits, so a slow command delays only the ones behind it
	// when all workers are busy.
	slots := make(chan struct{}, workers)
	sub, err := nc.QueueSubscribe(systemsSubject, "berth-api", func(m *nats.Msg) {
		slots <- struct{}{}
		go func() {
			defer func() { <-slots }()
			handle(m, cmds, dl, log)
		}()
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", systemsSubject, err)
	}
	return sub, nil
}

// workers is how many intake commands one API replica applies at once.
const workers = 8

// handle applies one command, answers it and dead-letters a refusal.
func handle(m *nats.Msg, cmds Commands, dl CommandDeadLetters, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	system := systemOf(m.Subject)
	if m.Reply != "" && !ownInbox(system, m.Reply) {
		// The API would publish the answer with its own rights: onto a KV
		// bucket's subject ($KV.berth_systems.<other>: another system's
		// credential replaced by text the sender knows) or another
		// identity's inbox. Nothing of the command is applied or answered.
		reason := ReplyRefused + ": the reply subject " + quoteShort(m.Reply) + " is not under the sender's own inbox prefix " + events.InboxPrefix(events.SystemUser(system)) + "."
		if err := dl.DeadLetterMsg(ctx, "intake", m.Subject, m.Header, m.Data, reason); err != nil {
			log.Error("intake command with a foreign reply subject not dead-lettered", "system", system, "reply", m.Reply, "err", err)
		} else {
			log.Warn("intake command refused", "system", system, "code", ReplyRefused, "reply", m.Reply)
		}
		return
	}
	reply := cmds.Intake(ctx, system, m.Header, m.Data)
	if !reply.Accepted && !reply.Duplicate {
		// Recorded before the answer: whoever got a refusal finds it among
		// the dead letters.
		reason := reply.Code + ": " + reply.Message
		if err := dl.DeadLetterMsg(ctx, "intake", m.Subject, m.Header, m.Data, reason); err != nil {
			log.Error("intake command refused and not dead-lettered", "system", system, "reason", reason, "err", err)
		} else {
			log.Warn("intake command refused", "system", system, "code", reply.Code, "reason", reply.Message)
		}
	}
	if m.Reply != "" {
		b, _ := json.Marshal(reply)
		if err := m.Respond(b); err != nil {
			log.Warn("intake reply not sent", "system", system, "err", err)
		}
	}
}

// systemOf is the system token of berth.intake.sys.<name>.workspace.
func systemOf(subject string) string {
	parts := strings.Split(subject, ".")
	if len(parts) != 5 {
		return ""
	}
	return parts[3]
}

// ReplyRefused is the dead-letter code of a command whose reply subject is
// not the sender's own.
const ReplyRefused = "reply_refused"

// ownInbox reports whether reply lies under system's own inbox prefix,
// the only replies its bus identity may read (natsbus.SystemUser).
func ownInbox(system, reply string) bool {
	prefix := events.InboxPrefix(events.SystemUser(system)) + "."
	return system != "" && strings.HasPrefix(reply, prefix) && len(reply) > len(prefix) && !strings.ContainsAny(reply, "*> \t\r\n")
}

// quoteShort quotes s for a log line, cut to 128 bytes.
func quoteShort(s string) string {
	if len(s) > 128 {
		s = s[:128] + "…"
	}
	return fmt.Sprintf("%q", s)
}
