package natsbus

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/berthdev/berth/pkg/events"
)

// Identities on the bus: one per service, "ops" for operators' tools
// (berthctl, nats CLI, tests) with every right, and "intake" for other
// systems, which may only publish on berth.intake.> (and read replies).
var Identities = []string{"api", "provisioner", "router-sync", "reaper", "ops", "intake"}

// Identity is who a process is on the bus. The password comes from
// Password, else from PasswordFile, read again at every (re)connect so a
// service started before the file exists gets in once it does.
type Identity struct {
	User         string
	Password     string
	PasswordFile string
	// TLS: CAFile verifies the server (a tls:// URL without it uses the
	// system's roots); CertFile and KeyFile present a client certificate
	// to a server that asks for one.
	CAFile, CertFile, KeyFile string
}

func (id Identity) userInfo() (string, string) {
	if id.Password != "" || id.PasswordFile == "" {
		return id.User, id.Password
	}
	b, err := os.ReadFile(id.PasswordFile)
	if err != nil {
		return id.User, ""
	}
	return id.User, strings.TrimSpace(string(b))
}

// PasswordFile is where the embedded server keeps user's password.
func PasswordFile(dataDir, user string) string {
	return filepath.Join(dataDir, "nats-users", user+".password")
}

// EnsurePasswords returns every identity's password, generating the
// missing ones into dataDir/nats-users (0600, the folder 0700).
func EnsurePasswords(dataDir string) (map[string]string, error) {
	dir := filepath.Join(dataDir, "nats-users")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("nats users dir: %w", err)
	}
	out := map[string]string{}
	for _, user := range Identities {
		path := PasswordFile(dataDir, user)
		b, err := os.ReadFile(path)
		if err == nil && len(strings.TrimSpace(string(b))) >= 16 {
			out[user] = strings.TrimSpace(string(b))
			continue
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		raw := make([]byte, 24)
		if _, err := rand.Read(raw); err != nil {
			return nil, err
		}
		pw := hex.EncodeToString(raw)
		if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
		out[user] = pw
	}
	return out, nil
}

// Users turns passwords into server users with each identity's rights:
// router-sync only reads the log (no append, no stream or bucket changes);
// the provisioner and the reaper append only their own event types (see
// Permissions). answered are the registered systems whose inbox the API
// may reply on (the intake's answers).
func Users(passwords map[string]string, answered ...string) []*server.User {
	var out []*server.User
	for _, user := range Identities {
		pw, ok := passwords[user]
		if !ok {
			continue
		}
		perms := Permissions(user)
		if user == "api" {
			perms = APIPermissions(answered...)
		}
		out = append(out, &server.User{Username: user, Password: pw, Permissions: perms})
	}
	return out
}

// APIPermissions are the API's rights: an allow-list of where it must
// publish (the JetStream API for the streams and buckets it declares, its
// own buckets, the event types it appends, the catalog and user settings,
// logs requests, dead letters and redrives) and, for replies, only the
// inboxes of the registered systems named. A reply subject a sender forged
// is refused by the intake first and by the server second. Subscriptions
// are not narrowed: the API reads everything it serves.
func APIPermissions(answered ...string) *server.Permissions {
	allow := []string{"$JS.API.>", "$JS.ACK.>", "$JS.FC.>", events.CatalogSubject, events.UsersSubject,
		events.LogsSubject, events.DeadLetterSubjectPrefix + ">", events.RedriveSubjectPrefix + ">"}
	for _, b := range append(slices.Clone(apiBuckets), events.ActivityBucket) {
		allow = append(allow, "$KV."+b+".>")
	}
	for _, t := range Appends["api"] {
		allow = append(allow, events.WorkspaceSubjectPrefix+"*."+events.TypeToken(t))
	}
	for _, name := range answered {
		allow = append(allow, events.InboxPrefix(events.SystemUser(name))+".>")
	}
	// The log is the audit trail: the API declares its streams but never
	// deletes, purges or edits them.
	var deny []string
	for _, st := range []string{events.Stream, events.DeadLetterStream} {
		for _, op := range []string{"DELETE", "PURGE", "MSG.DELETE", "RESTORE"} {
			deny = append(deny, "$JS.API.STREAM."+op+"."+st)
		}
	}
	return &server.Permissions{Publish: &server.SubjectPermission{Allow: allow, Deny: deny}}
}

// SystemUser is the bus identity of registered system name (its
// password: the bcrypt hash the API keeps in the systems bucket).
func SystemUser(name, passwordHash string, readEvents bool) *server.User {
	// Replies come to its own inbox prefix only: _INBOX.> would show it
	// every reply on the bus, the API's included.
	subscribe := []string{events.InboxPrefix(events.SystemUser(name)) + ".>"}
	if readEvents {
		subscribe = append(subscribe, events.WorkspaceEvents, events.CatalogSubject)
	}
	return &server.User{Username: events.SystemUser(name), Password: passwordHash, Permissions: &server.Permissions{
		// Its own intake subject only: the subject is how the API knows who
		// sent a command.
		Publish:   &server.SubjectPermission{Allow: []string{events.IntakeSystemSubject(name)}},
		Subscribe: &server.SubjectPermission{Allow: subscribe},
	}}
}

// Appends are the workspace event types each service identity may append
// (the subject's last token is the type, so the server enforces this). The
// API appends definitions and requests, the provisioner observations (and
// the restart of a crashed workspace), the reaper its requests. Nobody but
// the API (and ops) appends catalog events.
var Appends = map[string][]events.Type{
	"api": {events.TypeCreated, events.TypeUpdated, events.TypeStartRequested, events.TypeStopRequested,
		events.TypeDeleteRequested, events.TypePurgeRequested, events.TypeLifecycleChanged, events.TypeRestoreRequested},
	"provisioner": {events.TypeAddressed, events.TypeRunning, events.TypeStopped, events.TypeFailed, events.TypeArchived,
		events.TypeArchiveFailed, events.TypeDeleted, events.TypeRestored, events.TypeRestoreFailed,
		events.TypeStartRequested, events.TypeDiskWarning},
	"reaper": {events.TypeStopRequested, events.TypeIdleWarning, events.TypeArchiveRequested,
		events.TypeDeleteRequested},
}

// Permissions of one identity (nil: every right).
func Permissions(user string) *server.Permissions {
	stream := events.Stream
	switch user {
	case "router-sync":
		return &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{
			"$JS.API.INFO",
			"$JS.API.STREAM.INFO." + stream,
			"$JS.API.CONSUMER.CREATE." + stream, "$JS.API.CONSUMER.CREATE." + stream + ".>",
			"$JS.API.CONSUMER.DELETE." + stream + ".>",
			"$JS.API.CONSUMER.INFO." + stream + ".>",
			"$JS.API.CONSUMER.MSG.NEXT." + stream + ".>",
			"$JS.API.DIRECT.GET." + stream, "$JS.API.DIRECT.GET." + stream + ".>",
		}, Deny: durableAdmin(stream, "provisioner")}, // its own ordered consumers only
			Subscribe: ownInbox(user)}
	case "intake":
		// The shared identity of systems that only report activity. It may
		// not publish on a registered system's subject (that subject is how
		// the API knows who sent a command), reads no events and no one
		// else's replies (its own inbox prefix), and touches no JetStream
		// API.
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{events.IntakeActivitySubject}},
			Subscribe: &server.SubjectPermission{Allow: []string{events.InboxPrefix("intake") + ".>"}},
		}
	case "api":
		return APIPermissions()
	case "provisioner", "reaper":
		// They append their own event types and consume, but may not write
		// the catalog or user settings, pose as other systems on the intake
		// subjects, write the buckets that are the API's (a session record
		// is a sign-in, a name claim a name, the installation id decides
		// which containers are Berth's), or create, restore, change or
		// delete any stream or bucket (the API declares them all).
		// Nor may they ask for a dead letter's retry: that is an admin's
		// call, made through the API.
		deny := append(appendsDenied(user), events.CatalogSubject, events.UsersSubject, events.IntakeSubjectPrefix+">",
			events.RedriveSubjectPrefix+">")
		// Subscriptions: their own inbox (replies, consumers' deliveries)
		// and, for the provisioner, the logs requests it answers. Not
		// another's inbox: the API's replies carry session records, and the
		// provisioner's replies workspaces' output.
		subscribe := ownInbox(user)
		if user == "provisioner" {
			subscribe.Allow = append(subscribe.Allow, events.LogsSubject)
		} else {
			deny = append(deny, events.LogsSubject) // only the API asks for logs
		}
		for _, b := range apiBuckets {
			deny = append(deny, "$KV."+b+".>")
		}
		// Nor read the systems' credentials (hashes, but still theirs).
		deny = append(deny, "$JS.API.DIRECT.GET.KV_"+events.SystemsBucket, "$JS.API.DIRECT.GET.KV_"+events.SystemsBucket+".>",
			"$JS.API.STREAM.MSG.GET.KV_"+events.SystemsBucket, "$JS.API.CONSUMER.CREATE.KV_"+events.SystemsBucket+".>",
			"$JS.API.CONSUMER.CREATE.KV_"+events.SystemsBucket)
		if user == "reaper" { // it only reads activity and engine status
			deny = append(deny, "$KV."+events.ActivityBucket+".>", "$KV."+events.ServiceStatusBucket+".>")
			deny = append(deny, durableAdmin(stream, "provisioner")...)
			deny = append(deny, durableAdmin(events.DeadLetterStream, "provisioner"+events.RedriveDurableSuffix)...)
		}
		for _, op := range []string{"CREATE", "UPDATE", "DELETE", "PURGE", "MSG.DELETE", "RESTORE", "SNAPSHOT", "LEADER.STEPDOWN", "PEER.REMOVE"} {
			deny = append(deny, "$JS.API.STREAM."+op+".*")
		}
		deny = append(deny, "$JS.API.ACCOUNT.>", "$JS.API.META.>", "$JS.API.SERVER.>")
		return &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: deny}, Subscribe: subscribe}
	}
	return nil
}

// ownInbox lets user subscribe to its own inbox prefix only (Connect sets
// the prefix from the identity's name).
func ownInbox(user string) *server.SubjectPermission {
	return &server.SubjectPermission{Allow: []string{events.InboxPrefix(user) + ".>"}}
}

// apiBuckets are the KV buckets only the API writes.
var apiBuckets = []string{events.NameClaimsBucket, events.SessionsBucket, events.InstallationBucket, events.SystemsBucket, events.IntakeBucket}

// appendsDenied are the log subjects of every workspace event type user may
// not append, and the old kind-less workspace subject nobody appends to.
func appendsDenied(user string) []string {
	deny := []string{events.WorkspaceSubjectPrefix + "*"}
	for _, t := range events.WorkspaceTypes() {
		if !slices.Contains(Appends[user], t) {
			deny = append(deny, events.WorkspaceSubjectPrefix+"*."+events.TypeToken(t))
		}
	}
	return deny
}

// durableAdmin denies creating, deleting, pulling from and acking another
// service's durable: whoever may pull could take its work (and, acking,
// swallow it; not acking, use up its deliveries).
func durableAdmin(stream, durable string) []string {
	return []string{"$JS.API.CONSUMER.CREATE." + stream + "." + durable, "$JS.API.CONSUMER.CREATE." + stream + "." + durable + ".>",
		"$JS.API.CONSUMER.DELETE." + stream + "." + durable, "$JS.API.CONSUMER.MSG.NEXT." + stream + "." + durable,
		"$JS.ACK." + stream + "." + durable + ".>"}
}

// connectOptions are the credentials of id for nats.Connect.
func (id Identity) connectOptions() []nats.Option {
	var out []nats.Option
	if id.User != "" {
		out = append(out, nats.UserInfoHandler(id.userInfo))
	}
	if id.CAFile != "" {
		out = append(out, nats.RootCAs(id.CAFile))
	}
	if id.CertFile != "" || id.KeyFile != "" {
		out = append(out, nats.ClientCert(id.CertFile, id.KeyFile))
	}
	return out
}
