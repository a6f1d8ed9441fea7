// Command berthctl is the admin's command line for the Berth API: list
// workspaces, read a workspace's audit history, put it on hold, set its idle
// timeout, restore it from its archive, and read and retry dead letters.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

const usage = `usage: berthctl [flags] <command> [args]

commands:
  list                              workspaces you may see
  get <workspace>                   one workspace (id or name)
  launch [name]                     create your workspace if needed and start it
  start|stop <workspace>            ask for a start or a stop
  delete <workspace> [--data keep|archive|purge]
                                    delete it; its home volume is kept unless archive or purge says otherwise
  history <workspace> [-o json]     its events from the audit log, one line each
  hold <workspace> [reason]         exempt it from idle stops and retention (admins)
  release <workspace>               end the hold (admins)
  idle-timeout <workspace> <dur>    e.g. 2h; 0 = the default
  restore <workspace>               recreate a deleted workspace from its archive (admins)
  deadletter list [--after N] [--limit N]
                                    messages consumers could never handle, with the reason (admins)
  deadletter show <seq>             one dead letter with its message (admins)
  deadletter retry <seq>            hand a dead letter back to its consumer (admins; provisioner only)
  deadletters                       the same as deadletter list
  system register <name> --types T,T --owners O,O [--read-events]
                                    let another system send intake commands (admins; prints its password once)
  system list                       registered systems (admins)
  system revoke <name>              end a system's rights and credential (admins)
  audit [--actor A] [--type T] [--workspace W] [--since T] [--until T] [--oldest] [--limit N] [-o table|json|jsonl]
                                    who did what, across the whole log (admins, auditors)
  audit export [--since T] [--until T] > FILE
                                    the log as a hash-chained NDJSON export (admins, auditors)
  audit verify FILE                 check an export offline: exits 1 naming the first bad line
  audit tail [-n N] [-f]            the last entries, then (-f) every new one as it comes
  state <workspace> --at T          the workspace as it was at T (RFC 3339)
  replay --verify [--nats-url U] [--nats-user router-sync] [--nats-password-file F]
                                    rebuild every workspace from the log (read-only) and compare with the API's

flags:
`

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // -h asked for the usage, which is printed: not a failure
		}
		fmt.Fprintln(os.Stderr, "berthctl:", err)
		os.Exit(1)
	}
}

type client struct {
	base   string
	token  string
	http   *http.Client
	errOut io.Writer // hints that are not the command's output
}

func run(ctx context.Context, args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("berthctl", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.Usage = func() { fmt.Fprint(errOut, usage); fs.PrintDefaults() }
	api := fs.String("api", envOr("BERTH_API_URL", "http://127.0.0.1:8080"), "API base URL (env BERTH_API_URL)")
	token := fs.String("token", os.Getenv("BERTH_TOKEN"), "bearer token (env BERTH_TOKEN)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return errors.New("no command")
	}
	if *token == "" && !slices.ContainsFunc(rest, func(a string) bool { return a == "-h" || a == "--help" || a == "-help" }) {
		return errors.New("no token: set BERTH_TOKEN or --token")
	}
	c := &client{base: strings.TrimRight(*api, "/"), token: *token, http: &http.Client{Timeout: 20 * time.Second}, errOut: errOut}
	cmd, rest := rest[0], rest[1:]
	switch cmd {
	case "deadletter":
		return c.deadLetterCommand(ctx, out, rest)
	case "deadletters": // the older spelling of deadletter list
		return c.deadLetterList(ctx, out, cmd, rest)
	case "list":
		return c.print(ctx, out, "GET", "/api/v1/workspaces", nil)
	case "audit":
		return c.auditCommand(ctx, out, rest)
	case "state":
		return c.state(ctx, out, rest)
	case "replay":
		return c.replay(ctx, out, rest)
	case "history":
		return c.historyCommand(ctx, out, rest)
	case "launch":
		return c.launch(ctx, out, rest)
	case "system":
		return c.systemCommand(ctx, out, rest)
	case "get", "start", "stop", "delete", "restore", "release", "hold", "idle-timeout":
		return c.workspaceCommand(ctx, out, cmd, rest)
	}
	fs.Usage()
	return fmt.Errorf("unknown command %q", cmd)
}

// need checks a command's argument count.
func need(cmd string, args []string, n int) error {
	if len(args) != n {
		return fmt.Errorf("%s takes %d argument(s); see berthctl -h", cmd, n)
	}
	return nil
}

// workspaceArgs is how many arguments each workspace command takes (hold:
// at least one, the rest is its reason).
var workspaceArgs = map[string]int{"get": 1, "start": 1, "stop": 1, "restore": 1, "release": 1, "idle-timeout": 2}

// workspaceCommand runs a command on one workspace (id or name).
func (c *client) workspaceCommand(ctx context.Context, out io.Writer, cmd string, rest []string) error {
	n, exact := workspaceArgs[cmd]
	if !exact {
		n = 1 // hold: the workspace, then any words of reason; delete: then --data
	}
	if len(rest) < n || exact && len(rest) != n {
		return need(cmd, rest, n)
	}
	var idle time.Duration
	if cmd == "idle-timeout" {
		var err error
		if idle, err = time.ParseDuration(rest[1]); err != nil {
			return fmt.Errorf("idle timeout %q: %w (e.g. 90m, 2h, 0)", rest[1], err)
		}
	}
	id, err := c.resolve(ctx, rest[0])
	if err != nil {
		return err
	}
	path := "/api/v1/workspaces/" + id
	switch cmd {
	case "get":
		return c.print(ctx, out, "GET", path, nil)
	case "start", "stop":
		return c.print(ctx, out, "POST", path+"/"+cmd, nil)
	case "delete":
		return c.deleteWorkspace(ctx, out, path, rest[1:])
	case "restore":
		return c.print(ctx, out, "POST", path+"/restore", nil)
	case "release":
		return c.print(ctx, out, "PATCH", path+"/lifecycle", map[string]any{"hold": false})
	case "hold":
		return c.print(ctx, out, "PATCH", path+"/lifecycle", map[string]any{"hold": true, "hold_reason": strings.Join(rest[1:], " ")})
	}
	return c.print(ctx, out, "PATCH", path+"/lifecycle", map[string]any{"idle_timeout_seconds": int64(idle.Seconds())})
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// resolve accepts a workspace id or name. Deleted workspaces are found by
// name too (restore needs them).
func (c *client) resolve(ctx context.Context, ref string) (string, error) {
	var list struct {
		Workspaces []struct {
			ID     string `json:"id"`
			Name   string `json:"name"`
			Status string `json:"status"`
		} `json:"workspaces"`
	}
	body, err := c.do(ctx, "GET", "/api/v1/workspaces?include_deleted=true", nil)
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return "", fmt.Errorf("list workspaces: %w", err)
	}
	var found []string
	for _, w := range list.Workspaces {
		if w.ID == ref {
			return w.ID, nil
		}
		if w.Name == ref {
			found = append(found, w.ID)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no workspace %q", ref)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("several workspaces were named %q (%s); use the id", ref, strings.Join(found, ", "))
}

// history prints every event of the workspace, following the API's pages.
// historyCommand prints a workspace's events, one readable line each
// (-o json: the events as the API has them).
func (c *client) historyCommand(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("history", flag.ContinueOnError)
	fs.SetOutput(c.errOut)
	format := fs.String("o", "text", "output: text (one line per event) or json")
	if err := fs.Parse(reorder(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 || (*format != "text" && *format != "json") {
		return errors.New("usage: berthctl history <workspace> [-o text|json]")
	}
	id, err := c.resolve(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	all, err := c.history(ctx, id)
	if err != nil {
		return err
	}
	if *format == "json" {
		b, err := json.MarshalIndent(map[string]any{"events": all}, "", "  ")
		if err != nil {
			return err
		}
		_, err = out.Write(append(b, '\n'))
		return err
	}
	for _, raw := range all {
		var e struct {
			Time   time.Time `json:"time"`
			Actor  string    `json:"actor"`
			Type   string    `json:"type"`
			Reason string    `json:"reason"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("history of %s: %w", id, err)
		}
		action := e.Type[strings.LastIndexByte(e.Type, '.')+1:]
		line := fmt.Sprintf("%s  %s  %s", e.Time.Local().Format("2006-01-02 15:04:05"), e.Actor, action)
		if e.Reason != "" {
			line += "  (" + e.Reason + ")"
		}
		if _, err := fmt.Fprintln(out, line); err != nil {
			return err
		}
	}
	return nil
}

// history reads every event of a workspace, across the API's pages.
func (c *client) history(ctx context.Context, id string) ([]json.RawMessage, error) {
	all := []json.RawMessage{}
	for after := uint64(0); ; {
		b, err := c.do(ctx, "GET", fmt.Sprintf("/api/v1/workspaces/%s/events?limit=1000&after=%d", id, after), nil)
		if err != nil {
			return nil, err
		}
		var page struct {
			Events []json.RawMessage `json:"events"`
			Next   uint64            `json:"next"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return nil, fmt.Errorf("history of %s: %w", id, err)
		}
		all = append(all, page.Events...)
		if page.Next == 0 || page.Next <= after {
			return all, nil
		}
		after = page.Next
	}
}

func (c *client) print(ctx context.Context, out io.Writer, method, path string, body any) error {
	b, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	var pretty bytes.Buffer
	// The API ends its bodies with a newline; one is added after indenting.
	if json.Indent(&pretty, bytes.TrimSpace(b), "", "  ") != nil {
		_, err = out.Write(b)
		return err
	}
	pretty.WriteByte('\n')
	_, err = out.Write(pretty.Bytes())
	return err
}

func (c *client) do(ctx context.Context, method, path string, body any) ([]byte, error) {
	res, err := c.send(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return b, nil
}

// send makes the request and returns the response of a success, or the
// API's problem as an error.
func (c *client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	u, err := url.Parse(c.base + path)
	if err != nil {
		return nil, fmt.Errorf("bad API URL: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if res.StatusCode < 300 {
		return res, nil
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	var p struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
		Title  string `json:"title"`
	}
	if json.Unmarshal(b, &p) == nil && p.Code != "" {
		return nil, fmt.Errorf("%s (%s): %s", p.Title, p.Code, p.Detail)
	}
	return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, path, res.StatusCode, strings.TrimSpace(string(b)))
}
