package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// launch is the dashboard's Launch button.
func (c *client) launch(ctx context.Context, out io.Writer, args []string) error {
	if len(args) > 1 {
		return errors.New("usage: berthctl launch [name]")
	}
	body := map[string]any{}
	if len(args) == 1 {
		body["name"] = args[0]
	}
	return c.print(ctx, out, http.MethodPost, "/api/v1/workspaces/launch", body)
}

// deleteWorkspace asks for a delete, keeping the home volume by default.
func (c *client) deleteWorkspace(ctx context.Context, out io.Writer, path string, args []string) error {
	fs := flag.NewFlagSet("delete", flag.ContinueOnError)
	fs.SetOutput(c.errOut)
	data := fs.String("data", "keep", "the home volume: keep, archive (then remove) or purge")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch *data {
	case "keep", "archive", "purge":
	default:
		return fmt.Errorf("--data %q: want keep, archive or purge", *data)
	}
	return c.print(ctx, out, http.MethodDelete, path+"?data="+*data, nil)
}

// systemCommand registers, lists and revokes other systems.
func (c *client) systemCommand(ctx context.Context, out io.Writer, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: berthctl system register|list|revoke: see berthctl -h")
	}
	switch args[0] {
	case "list":
		return c.print(ctx, out, http.MethodGet, "/api/v1/systems", nil)
	case "revoke":
		if len(args) != 2 {
			return errors.New("usage: berthctl system revoke <name>")
		}
		if _, err := c.do(ctx, http.MethodDelete, "/api/v1/systems/"+args[1], nil); err != nil {
			return err
		}
		_, err := fmt.Fprintf(out, "system %s revoked\n", args[1])
		return err
	case "register":
		return c.registerSystem(ctx, out, args[1:])
	}
	return fmt.Errorf("unknown system command %q: want register, list or revoke", args[0])
}

func (c *client) registerSystem(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("system register", flag.ContinueOnError)
	fs.SetOutput(c.errOut)
	types := fs.String("types", "", "comma-separated intake command types, e.g. berth.intake.workspace.create,berth.intake.workspace.start")
	owners := fs.String("owners", "", `comma-separated owners whose workspaces it may act on, or "*"`)
	read := fs.Bool("read-events", false, "also let it subscribe, read-only, to Berth's events")
	if err := fs.Parse(reorder(args, "read-events")); err != nil {
		return err
	}
	if fs.NArg() != 1 || *types == "" || *owners == "" {
		return errors.New("usage: berthctl system register <name> --types T,T --owners O,O [--read-events]")
	}
	return c.print(ctx, out, http.MethodPost, "/api/v1/systems", map[string]any{
		"name": fs.Arg(0), "types": split(*types), "owners": split(*owners), "read_events": *read})
}

func split(csv string) []string {
	var out []string
	for _, v := range strings.Split(csv, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
