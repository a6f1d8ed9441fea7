package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// workspaceArg is the workspace a command acts on.
type workspaceArg struct {
	Workspace string `arg:"" help:"Workspace id or name." predictor:"workspace"`
}

// on resolves the workspace and runs fn with its API path.
func (w workspaceArg) on(e *env, fn func(c *client, path string) error) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	id, err := c.resolve(e.ctx, w.Workspace)
	if err != nil {
		return err
	}
	return fn(c, "/api/v1/workspaces/"+id)
}

// call sends one request about the workspace and prints the answer.
func (w workspaceArg) call(e *env, method, suffix string, body any) error {
	return w.on(e, func(c *client, path string) error { return c.print(e.ctx, e.out, method, path+suffix, body) })
}

type listCmd struct{}

func (listCmd) Run(e *env) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	return c.print(e.ctx, e.out, http.MethodGet, "/api/v1/workspaces", nil)
}

type getCmd struct{ workspaceArg }

func (x *getCmd) Run(e *env) error { return x.call(e, http.MethodGet, "", nil) }

type startCmd struct{ workspaceArg }

func (x *startCmd) Run(e *env) error { return x.call(e, http.MethodPost, "/start", nil) }

type stopCmd struct{ workspaceArg }

func (x *stopCmd) Run(e *env) error { return x.call(e, http.MethodPost, "/stop", nil) }

type restoreCmd struct{ workspaceArg }

func (x *restoreCmd) Run(e *env) error { return x.call(e, http.MethodPost, "/restore", nil) }

type releaseCmd struct{ workspaceArg }

func (x *releaseCmd) Run(e *env) error {
	return x.call(e, http.MethodPatch, "/lifecycle", map[string]any{"hold": false})
}

type holdCmd struct {
	workspaceArg
	Reason []string `arg:"" optional:"" help:"Why (free text)."`
}

func (x *holdCmd) Run(e *env) error {
	return x.call(e, http.MethodPatch, "/lifecycle", map[string]any{"hold": true, "hold_reason": strings.Join(x.Reason, " ")})
}

type idleTimeoutCmd struct {
	workspaceArg
	Timeout string `arg:"" help:"e.g. 90m, 2h; 0 = the default."`
}

func (x *idleTimeoutCmd) Run(e *env) error {
	idle, err := time.ParseDuration(x.Timeout)
	if err != nil {
		return fmt.Errorf("idle timeout %q: %w (e.g. 90m, 2h, 0)", x.Timeout, err)
	}
	return x.call(e, http.MethodPatch, "/lifecycle", map[string]any{"idle_timeout_seconds": int64(idle.Seconds())})
}

type deleteCmd struct {
	workspaceArg
	Data string `enum:"keep,archive,purge" default:"keep" help:"The home volume: keep, archive (then remove) or purge."`
}

func (x *deleteCmd) Run(e *env) error { return x.call(e, http.MethodDelete, "?data="+x.Data, nil) }

type launchCmd struct {
	Name  string `arg:"" optional:"" help:"The workspace's name (default: the API's, your user name)."`
	Image string `help:"A catalog image you may launch (the default or a launchable one): your workspace of it."`
}

func (x *launchCmd) Run(e *env) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	body := map[string]any{}
	if x.Name != "" {
		body["name"] = x.Name
	}
	if x.Image != "" {
		body["image"] = x.Image
	}
	return c.print(e.ctx, e.out, http.MethodPost, "/api/v1/workspaces/launch", body)
}

type logsCmd struct {
	workspaceArg
	Tail       int  `short:"n" default:"200" help:"Lines from the end (at most 5000)."`
	Timestamps bool `short:"t" help:"Prefix each line with the engine's time."`
}

func (x *logsCmd) Run(e *env) error {
	if x.Tail < 1 || x.Tail > 5000 {
		return fmt.Errorf("--tail %d: want 1 to 5000", x.Tail)
	}
	return x.on(e, func(c *client, path string) error {
		q := url.Values{"tail": {strconv.Itoa(x.Tail)}}
		if x.Timestamps {
			q.Set("timestamps", "true")
		}
		b, err := c.do(e.ctx, http.MethodGet, path+"/logs?"+q.Encode(), nil)
		if err != nil {
			return err
		}
		_, err = e.out.Write(b)
		return err
	})
}

// historyCmd prints a workspace's events, one readable line each (-o
// json: the events as the API has them).
type historyCmd struct {
	workspaceArg
	Output string `short:"o" enum:"text,json" default:"text" help:"text (one line per event) or json."`
}

func (x *historyCmd) Run(e *env) error {
	return x.on(e, func(c *client, path string) error {
		all, err := c.history(e, path)
		if err != nil {
			return err
		}
		if x.Output == "json" {
			b, err := json.MarshalIndent(map[string]any{"events": all}, "", "  ")
			if err != nil {
				return err
			}
			_, err = e.out.Write(append(b, '\n'))
			return err
		}
		return printHistory(e.out, all)
	})
}

func printHistory(out io.Writer, all []json.RawMessage) error {
	for _, raw := range all {
		var e struct {
			Time   time.Time `json:"time"`
			Actor  string    `json:"actor"`
			Type   string    `json:"type"`
			Reason string    `json:"reason"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("history: %w", err)
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
func (c *client) history(e *env, path string) ([]json.RawMessage, error) {
	all := []json.RawMessage{}
	for after := uint64(0); ; {
		var page struct {
			Events []json.RawMessage `json:"events"`
			Next   uint64            `json:"next"`
		}
		if err := c.getJSON(e.ctx, fmt.Sprintf("%s/events?limit=1000&after=%d", path, after), &page); err != nil {
			return nil, err
		}
		all = append(all, page.Events...)
		if page.Next == 0 || page.Next <= after {
			return all, nil
		}
		after = page.Next
	}
}

type stateCmd struct {
	workspaceArg
	At string `required:"" help:"The moment (RFC 3339), e.g. 2026-11-24T14:02:00Z."`
}

func (x *stateCmd) Run(e *env) error {
	if _, err := time.Parse(time.RFC3339Nano, x.At); err != nil {
		return fmt.Errorf("--at %q: want an RFC 3339 time, e.g. 2026-11-24T14:02:00Z", x.At)
	}
	return x.call(e, http.MethodGet, "/state?at="+url.QueryEscape(x.At), nil)
}
