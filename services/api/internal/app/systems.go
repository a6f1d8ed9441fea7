package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"

	"golang.org/x/crypto/bcrypt"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/events/intake"
)

// Credentials keeps registered systems' bus passwords, as bcrypt hashes.
type Credentials interface {
	Put(ctx context.Context, name, hash string) error
	Delete(ctx context.Context, name string) error
}

// SystemInput registers a system: which intake command types it may send,
// for whose workspaces ("*": anyone's).
type SystemInput struct {
	Name       string   `json:"name"`
	Types      []string `json:"types"`
	Owners     []string `json:"owners"`
	ReadEvents bool     `json:"read_events"`
}

// RegisteredSystem is a registration and, once, its credential.
type RegisteredSystem struct {
	events.SystemRegistered
	User     string // its bus identity
	Password string // only when just registered: never stored in clear
	Subject  string // where it sends workspace commands
	// InboxPrefix is where its replies must come (it may read no other).
	InboxPrefix string
}

// Systems lists the registered systems (admins).
func (s *Service) Systems(c Caller) ([]RegisteredSystem, error) {
	if !c.Admin {
		return nil, forbidden("only admins see registered systems")
	}
	var out []RegisteredSystem
	for _, r := range s.proj.Systems() {
		out = append(out, registered(r, ""))
	}
	return out, nil
}

func registered(r events.SystemRegistered, password string) RegisteredSystem {
	user := events.SystemUser(r.Name)
	return RegisteredSystem{SystemRegistered: r, User: user, Password: password, Subject: events.IntakeSystemSubject(r.Name), InboxPrefix: events.InboxPrefix(user)}
}

// RegisterSystem registers (or re-registers, with a new credential) a
// system that may send intake commands (admins). The password is returned
// once; only its hash is kept, outside the log.
func (s *Service) RegisterSystem(ctx context.Context, c Caller, in SystemInput) (RegisteredSystem, error) {
	if !c.Admin {
		return RegisteredSystem{}, forbidden("only admins register systems")
	}
	if fields := checkSystem(in); len(fields) > 0 {
		return RegisteredSystem{}, invalid(fields...)
	}
	if s.o.Credentials == nil {
		return RegisteredSystem{}, unavailable(fmt.Errorf("no credential store"))
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return RegisteredSystem{}, err
	}
	password := hex.EncodeToString(raw)
	hash, err := bcrypt.GenerateFromPassword([]byte(password), SystemCredentialCost)
	if err != nil {
		return RegisteredSystem{}, err
	}
	// The credential first: without the registration it grants nothing
	// (the bus lets in only registered systems' credentials).
	if err := s.o.Credentials.Put(ctx, in.Name, string(hash)); err != nil {
		return RegisteredSystem{}, unavailable(fmt.Errorf("store the credential of %s: %w", in.Name, err))
	}
	r := events.SystemRegistered{Name: in.Name, Types: slices.Clone(in.Types), Owners: slices.Clone(in.Owners), ReadEvents: in.ReadEvents}
	if err := s.appendUsers(ctx, &r, c.meta(s.o.Source, "system "+in.Name+" registered by "+c.Subject)); err != nil {
		return RegisteredSystem{}, err
	}
	return registered(r, password), nil
}

// SystemCredentialCost is the bcrypt cost of a system's stored credential.
// The lowest: the password is 192 random bits, which no cost factor makes
// harder to guess, while the bus pays the cost at every connection and, at
// every change of its users (each registration or revocation), once per
// connected system, in turn. At the default cost (10) that is 0.1 s each,
// 0.7 s under the race detector: a reload with a few systems connected made
// a newly registered one wait seconds to get in (issue 24).
const SystemCredentialCost = bcrypt.MinCost

// RevokeSystem ends a system's rights and credential (admins).
func (s *Service) RevokeSystem(ctx context.Context, c Caller, name string) error {
	if !c.Admin {
		return forbidden("only admins revoke systems")
	}
	if _, ok := s.proj.System(name); !ok {
		return &Error{Kind: KindNotFound, Code: CodeSystemNotFound, Message: fmt.Sprintf("no registered system %q", name)}
	}
	if err := s.appendUsers(ctx, &events.SystemRevoked{Name: name}, c.meta(s.o.Source, "system "+name+" revoked by "+c.Subject)); err != nil {
		return err
	}
	if err := s.o.Credentials.Delete(ctx, name); err != nil {
		// The revocation is in the log: the bus lets the credential in no
		// more whether or not its hash is gone.
		return unavailable(fmt.Errorf("system %s is revoked; removing its credential failed (retry): %w", name, err))
	}
	return nil
}

func checkSystem(in SystemInput) []FieldError {
	var fields []FieldError
	if !events.ValidSystemName(in.Name) {
		fields = append(fields, FieldError{Field: "name", Code: "invalid_name", Message: "name must be 1-32 lowercase letters, digits or '-', starting with a letter or digit"})
	}
	if len(in.Types) == 0 {
		fields = append(fields, FieldError{Field: "types", Code: "required", Message: "types lists the intake command types the system may send"})
	}
	for _, t := range in.Types {
		if !slices.Contains(intake.Types, t) {
			fields = append(fields, FieldError{Field: "types", Code: "unknown_type", Message: fmt.Sprintf("%q is not an intake command type (%v)", t, intake.Types)})
		}
	}
	if len(in.Owners) == 0 {
		fields = append(fields, FieldError{Field: "owners", Code: "required", Message: `owners lists whose workspaces the system may act on (["*"]: anyone's)`})
	}
	for _, o := range in.Owners {
		if o == "" || len(o) > 256 {
			fields = append(fields, FieldError{Field: "owners", Code: "invalid_subject", Message: "each owner is a user's subject of 1-256 bytes, or *"})
		}
	}
	return fields
}
