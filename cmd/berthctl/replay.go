package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"slices"
	"time"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus"
)

// replay rebuilds the workspaces from the log with a read-only bus
// identity and compares them with what the API serves: a check that the
// API's state is the log's, for ops after an incident or an upgrade.
type replayCmd struct {
	Verify           bool   `required:"" help:"Compare the rebuilt workspaces with the API's (the only mode)."`
	NatsURL          string `name:"nats-url" env:"BERTH_NATS_URL" default:"nats://127.0.0.1:4222" help:"The bus."`
	NatsUser         string `default:"router-sync" help:"A read-only identity on the bus."`
	NatsPasswordFile string `help:"File holding its password (default data/nats-users/<user>.password; env BERTH_NATS_PASSWORD wins)."`
}

func (x *replayCmd) Run(e *env) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	passwordFile := x.NatsPasswordFile
	if passwordFile == "" {
		passwordFile = natsbus.PasswordFile("data", x.NatsUser)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), 5*time.Minute) // a large log takes a while
	defer cancel()
	replayed, err := replayLog(ctx, x.NatsURL, natsbus.Identity{User: x.NatsUser, Password: os.Getenv("BERTH_NATS_PASSWORD"), PasswordFile: passwordFile})
	if err != nil {
		return err
	}
	var live struct {
		Workspaces []map[string]any `json:"workspaces"`
	}
	if err := c.getJSON(ctx, "/api/v1/workspaces?include_deleted=true", &live); err != nil {
		return err
	}
	diffs, moved := compareWorkspaces(replayed, live.Workspaces)
	for _, d := range diffs {
		fmt.Fprintln(e.out, d)
	}
	fmt.Fprintf(e.out, "%d workspaces rebuilt from the log, %d served by the API, %d changed during the check, %d differences\n",
		len(replayed), len(live.Workspaces), moved, len(diffs))
	if len(diffs) > 0 {
		return fmt.Errorf("the API's state differs from the log in %d places", len(diffs))
	}
	return nil
}

// replayLog folds the whole log with a read-only connection.
func replayLog(ctx context.Context, url string, id natsbus.Identity) ([]events.Workspace, error) {
	quiet := slog.New(slog.DiscardHandler)
	nc, err := natsbus.Connect(url, "berthctl-replay", id, quiet)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	l, err := eventlog.Open(ctx, nc, eventlog.Options{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open the log at %s as %s: %w", url, id.User, err)
	}
	proj := events.NewProjection()
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	if err := l.Replay(rctx, quiet, proj); err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	return proj.Workspaces(nil), nil
}

// compareWorkspaces lists every difference between the workspaces folded
// from the log and the API's bodies of them, field by field (the API's
// body has the fold's field names). A workspace whose version differs
// changed between the two reads: counted, not a difference.
func compareWorkspaces(replayed []events.Workspace, live []map[string]any) (diffs []string, moved int) {
	byID := map[string]map[string]any{}
	for _, w := range live {
		id, _ := w["id"].(string)
		byID[id] = w
	}
	for _, ws := range replayed {
		body, ok := byID[ws.ID]
		delete(byID, ws.ID)
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s (%s): in the log, not served by the API", ws.Name, ws.ID))
			continue
		}
		var folded map[string]any
		raw, _ := json.Marshal(ws)
		_ = json.Unmarshal(raw, &folded)
		if !reflect.DeepEqual(folded["version"], body["version"]) {
			moved++
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(body)) {
			if k != "url" && !reflect.DeepEqual(folded[k], body[k]) {
				diffs = append(diffs, fmt.Sprintf("%s (%s): %s is %v in the log, %v in the API", ws.Name, ws.ID, k, folded[k], body[k]))
			}
		}
	}
	for id := range byID {
		diffs = append(diffs, fmt.Sprintf("%s: served by the API, not in the log", id))
	}
	return diffs, moved
}
