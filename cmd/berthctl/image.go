package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
)

type imageCmd struct {
	Add    imageAddCmd    `cmd:"" help:"Put an image on the allow-list (admins)."`
	Set    imageSetCmd    `cmd:"" help:"Whether users may launch an image, and the default image (admins)."`
	List   imageListCmd   `cmd:"" default:"withargs" help:"The image catalog and the default image."`
	Remove imageRemoveCmd `cmd:"" help:"Take an image off the allow-list (admins); its workspaces keep it."`
}

type imageAddCmd struct {
	Ref         string   `arg:"" help:"Image reference, e.g. berth/workspace-debian:latest."`
	Description string   `help:"What it is, for the dashboard."`
	CapAdd      []string `sep:"," help:"Capabilities it needs back (from the allow-list), e.g. CHOWN,SETUID."`
	Profile     string   `help:"Its profile as JSON, or @FILE (docs/images.md)."`
	Launchable  bool     `help:"Users may launch a workspace of it themselves."`
}

func (x *imageAddCmd) Run(e *env) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	body := map[string]any{"ref": x.Ref, "description": x.Description, "cap_add": trimAll(x.CapAdd)}
	if x.Launchable {
		body["launchable"] = true
	}
	if x.Profile != "" {
		raw := []byte(x.Profile)
		if x.Profile[0] == '@' {
			if raw, err = os.ReadFile(x.Profile[1:]); err != nil {
				return fmt.Errorf("--profile: %w", err)
			}
		}
		var profile map[string]any
		if err := json.Unmarshal(raw, &profile); err != nil {
			return fmt.Errorf("--profile: not a JSON object: %w", err)
		}
		body["profile"] = profile
	}
	return c.print(e.ctx, e.out, http.MethodPost, "/api/v1/images", body)
}

type imageSetCmd struct {
	Ref        string `arg:"" help:"Image reference."`
	Launchable *bool  `help:"Users may launch a workspace of it themselves (--launchable or --launchable=false)."`
	Default    *bool  `name:"default" help:"Make it the default image (--default), or go back to BERTH_DEFAULT_IMAGE (--default=false)."`
}

func (x *imageSetCmd) Run(e *env) error {
	if x.Launchable == nil && x.Default == nil {
		return fmt.Errorf("give --launchable, --default or both")
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	body := map[string]any{}
	if x.Launchable != nil {
		body["launchable"] = *x.Launchable
	}
	if x.Default != nil {
		body["default"] = *x.Default
	}
	return c.print(e.ctx, e.out, http.MethodPatch, "/api/v1/images/"+url.PathEscape(x.Ref), body)
}

type imageListCmd struct{}

func (imageListCmd) Run(e *env) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	return c.print(e.ctx, e.out, http.MethodGet, "/api/v1/images", nil)
}

type imageRemoveCmd struct {
	Ref string `arg:"" help:"Image reference."`
}

func (x *imageRemoveCmd) Run(e *env) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	if _, err := c.do(e.ctx, http.MethodDelete, "/api/v1/images/"+url.PathEscape(x.Ref), nil); err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.out, "image %s removed from the catalog\n", x.Ref)
	return err
}
