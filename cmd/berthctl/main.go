// Command berthctl is the admin's command line for the Berth API: launch,
// start, stop and delete workspaces, read their logs and their audit
// history, put them on hold, restore them from their archive, read and
// retry dead letters, register other systems, and audit the whole log.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/posener/complete"
	"github.com/willabides/kongplete"
)

// errHelp: the usage (or a shell completion) was asked for and printed;
// main exits 0.
var errHelp = errors.New("help printed")

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, errHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "berthctl:", err)
		os.Exit(1)
	}
}

// globals are the flags every command takes.
type globals struct {
	API   string `name:"api" env:"BERTH_API_URL" default:"http://127.0.0.1:8080" help:"API base URL."`
	Token string `name:"token" env:"BERTH_TOKEN" help:"Bearer token (an admin's, an auditor's or a user's)."`
}

// cli is berthctl's grammar; each command's Run does its work.
type cli struct {
	globals

	List        listCmd        `cmd:"" help:"Workspaces you may see."`
	Get         getCmd         `cmd:"" help:"One workspace."`
	Launch      launchCmd      `cmd:"" help:"Create your workspace if needed and start it (the dashboard's Launch button)."`
	Start       startCmd       `cmd:"" help:"Ask for a start."`
	Stop        stopCmd        `cmd:"" help:"Ask for a stop."`
	Delete      deleteCmd      `cmd:"" help:"Delete a workspace; its home volume is kept unless --data says otherwise."`
	Logs        logsCmd        `cmd:"" help:"The workspace container's output (owner or admin)."`
	History     historyCmd     `cmd:"" help:"A workspace's events from the audit log, one line each."`
	Hold        holdCmd        `cmd:"" help:"Exempt a workspace from idle stops and retention (admins)."`
	Release     releaseCmd     `cmd:"" help:"End a hold (admins)."`
	IdleTimeout idleTimeoutCmd `cmd:"" name:"idle-timeout" help:"Set a workspace's idle timeout, e.g. 2h; 0 = the default."`
	Restore     restoreCmd     `cmd:"" help:"Recreate a deleted workspace from its archive (admins)."`
	State       stateCmd       `cmd:"" help:"A workspace as it was at a moment."`
	Audit       auditCmd       `cmd:"" help:"Who did what, across the whole log (admins, auditors)."`
	Deadletter  deadLetterCmd  `cmd:"" aliases:"deadletters" help:"Messages consumers could never handle (admins)."`
	Image       imageCmd       `cmd:"" help:"The image catalog: list, add (with a profile), remove."`
	System      systemCmd      `cmd:"" help:"Other systems allowed to send intake commands (admins)."`
	Replay      replayCmd      `cmd:"" help:"Rebuild every workspace from the log (read-only) and compare with the API's."`
	Completion  completionCmd  `cmd:"" help:"Print a shell completion script: source <(berthctl completion bash)."`
}

// env is what every command's Run gets.
type env struct {
	ctx         context.Context
	out, errOut io.Writer
	g           *globals
}

// client is the API client of a command that needs one (all but audit
// verify and completion): the token is checked here, not at parse time, so
// --help and offline commands need none.
func (e *env) client() (*client, error) {
	if e.g.Token == "" {
		return nil, errors.New("no token: set BERTH_TOKEN or --token")
	}
	return &client{base: strings.TrimRight(e.g.API, "/"), token: e.g.Token, http: &http.Client{Timeout: 20 * time.Second}, errOut: e.errOut}, nil
}

// exitCode is how kong's exit (after --help or a completion) unwinds to
// run instead of ending the process, so run stays testable.
type exitCode int

func run(ctx context.Context, args []string, out, errOut io.Writer) (err error) {
	var grammar cli
	parser, err := kong.New(&grammar,
		kong.Name("berthctl"),
		kong.Description("The admin's command line for Berth. Workspaces are named by id or name."),
		kong.Writers(out, errOut),
		kong.Exit(func(code int) { panic(exitCode(code)) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			code, ok := r.(exitCode)
			if !ok {
				panic(r)
			}
			if err = errHelp; code != 0 {
				err = fmt.Errorf("exit status %d", code)
			}
		}
	}()
	kongplete.Complete(parser, kongplete.WithPredictor("workspace", workspacePredictor()), kongplete.WithPredictor("file", complete.PredictFiles("*")))
	kctx, err := parser.Parse(args)
	if err != nil {
		return fmt.Errorf("%w (see berthctl --help)", err)
	}
	return kctx.Run(&env{ctx: ctx, out: out, errOut: errOut, g: &grammar.globals})
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

type client struct {
	base   string
	token  string
	http   *http.Client
	errOut io.Writer // hints that are not the command's output
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
	if err := c.getJSON(ctx, "/api/v1/workspaces?include_deleted=true", &list); err != nil {
		return "", err
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

// getJSON GETs path and decodes the answer into v.
func (c *client) getJSON(ctx context.Context, path string, v any) error {
	b, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
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
