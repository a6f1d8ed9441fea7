package main

import (
	"fmt"
	"net/http"
	"strings"
)

type systemCmd struct {
	Register systemRegisterCmd `cmd:"" help:"Let another system send intake commands (prints its password once)."`
	List     systemListCmd     `cmd:"" help:"Registered systems."`
	Revoke   systemRevokeCmd   `cmd:"" help:"End a system's rights and credential."`
}

type systemRegisterCmd struct {
	Name       string   `arg:"" help:"The system's name (lower case, digits, dashes)."`
	Types      []string `required:"" sep:"," help:"Intake command types, e.g. berth.intake.workspace.create,berth.intake.workspace.start."`
	Owners     []string `required:"" sep:"," help:"Owners whose workspaces it may act on, or \"*\"."`
	ReadEvents bool     `help:"Also let it subscribe, read-only, to Berth's events."`
}

func (x *systemRegisterCmd) Run(e *env) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	return c.print(e.ctx, e.out, http.MethodPost, "/api/v1/systems", map[string]any{
		"name": x.Name, "types": trimAll(x.Types), "owners": trimAll(x.Owners), "read_events": x.ReadEvents})
}

// trimAll drops the spaces around comma-separated values and empty ones.
func trimAll(vs []string) []string {
	var out []string
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

type systemListCmd struct{}

func (systemListCmd) Run(e *env) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	return c.print(e.ctx, e.out, http.MethodGet, "/api/v1/systems", nil)
}

type systemRevokeCmd struct {
	Name string `arg:"" help:"The system's name."`
}

func (x *systemRevokeCmd) Run(e *env) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	if _, err := c.do(e.ctx, http.MethodDelete, "/api/v1/systems/"+x.Name, nil); err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.out, "system %s revoked\n", x.Name)
	return err
}
