package app

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/capability"
)

// ImageInput adds an image to the catalog.
type ImageInput struct {
	Ref         string               `json:"ref"`
	Description string               `json:"description"`
	CapAdd      []string             `json:"cap_add"`
	Profile     *events.ImageProfile `json:"profile"`
	// Launchable: users may launch it themselves (one workspace each).
	Launchable bool `json:"launchable"`
}

// ImageUpdate changes a catalog image's settings; a nil field is left as
// it was.
type ImageUpdate struct {
	Launchable *bool `json:"launchable"`
	Default    *bool `json:"default"`
}

// AddImage puts an image on the allow-list (admins only).
func (s *Service) AddImage(ctx context.Context, c Caller, in ImageInput) (events.CatalogImage, error) {
	if !c.Admin {
		return events.CatalogImage{}, forbidden("only admins manage the image catalog")
	}
	in.Ref = trimmed(in.Ref)
	fields := nonNil(validateImageRef(in.Ref), validateDescription(in.Description))
	for i, cp := range in.CapAdd {
		if err := capability.Check(cp); err != nil {
			fields = append(fields, FieldError{Field: fmt.Sprintf("cap_add[%d]", i), Code: "invalid_capability", Message: err.Error()})
		}
	}
	fields = append(fields, s.checkProfile(in.Profile)...)
	if len(fields) > 0 {
		return events.CatalogImage{}, invalid(fields...)
	}
	caps := slices.Clone(in.CapAdd)
	if caps == nil {
		caps = []string{}
	}
	err := s.catalogCommand(ctx, c, func() (events.Payload, error) {
		if _, ok := s.proj.Image(in.Ref); ok {
			return nil, &Error{Kind: KindConflict, Code: CodeImageExists, Message: fmt.Sprintf("image %q is already in the catalog", in.Ref)}
		}
		return &events.ImageAdded{Ref: in.Ref, Description: in.Description, CapAdd: caps, Profile: in.Profile, Launchable: in.Launchable}, nil
	})
	if err != nil {
		return events.CatalogImage{}, err
	}
	img, _ := s.proj.Image(in.Ref)
	return img, nil
}

// checkProfile lists the problems of an image profile: its own rules, and
// its default resources within the installation's bounds.
func (s *Service) checkProfile(p *events.ImageProfile) []FieldError {
	if p == nil {
		return nil
	}
	var out []FieldError
	for _, problem := range p.Check() {
		out = append(out, FieldError{Field: problem.Field, Code: problem.Code, Message: problem.Message})
	}
	if p.Resources != nil {
		_, res := s.o.Bounds.resolveResources(p.Resources)
		for _, f := range res {
			f.Field = "profile." + f.Field
			out = append(out, f)
		}
	}
	return out
}

// RemoveImage takes an image off the allow-list (admins only).
func (s *Service) RemoveImage(ctx context.Context, c Caller, ref string) error {
	if !c.Admin {
		return forbidden("only admins manage the image catalog")
	}
	return s.catalogCommand(ctx, c, func() (events.Payload, error) {
		if _, ok := s.proj.Image(ref); !ok {
			return nil, imageNotFound(ref)
		}
		return &events.ImageRemoved{Ref: ref}, nil
	})
}

// UpdateImage changes whether users may launch an image and whether it is
// the default (admins only), in one event.
func (s *Service) UpdateImage(ctx context.Context, c Caller, ref string, in ImageUpdate) (events.CatalogImage, error) {
	if !c.Admin {
		return events.CatalogImage{}, forbidden("only admins manage the image catalog")
	}
	if in.Launchable == nil && in.Default == nil {
		return events.CatalogImage{}, invalid(FieldError{Field: "launchable", Code: "nothing_to_change", Message: "give launchable, default or both"})
	}
	err := s.catalogCommand(ctx, c, func() (events.Payload, error) {
		if _, ok := s.proj.Image(ref); !ok {
			return nil, imageNotFound(ref)
		}
		return &events.ImageUpdated{Ref: ref, Launchable: in.Launchable, Default: in.Default}, nil
	})
	if err != nil {
		return events.CatalogImage{}, err
	}
	img, _ := s.proj.Image(ref)
	return img, nil
}

// Images lists the catalog, and the default image.
func (s *Service) Images() ([]events.CatalogImage, string) {
	imgs, _ := s.proj.Catalog()
	return imgs, s.DefaultImage()
}

// DefaultImage is the image of a user's first launch and of a workspace
// created without one: an admin's choice, else the configured default.
func (s *Service) DefaultImage() string {
	if ref := s.proj.DefaultImage(); ref != "" {
		return ref
	}
	return s.o.DefaultImage
}

// mayUse says whether c may choose image for a workspace of their own:
// admins any catalog image, users the default and the launchable ones.
func (s *Service) mayUse(c Caller, image string) bool {
	if c.Admin || image == s.DefaultImage() {
		return true
	}
	img, ok := s.proj.Image(image)
	return ok && img.Launchable
}

func imageNotFound(ref string) error {
	return &Error{Kind: KindNotFound, Code: CodeImageNotFound, Message: fmt.Sprintf("image %q is not in the catalog", ref)}
}

func (s *Service) catalogCommand(ctx context.Context, c Caller, decide func() (events.Payload, error)) error {
	for range maxAttempts {
		p, err := decide()
		if err != nil {
			return err
		}
		_, version := s.proj.Catalog()
		e, err := events.New(events.CatalogSubject, p, c.meta(s.o.Source, "catalog change by "+c.Subject), s.o.Now())
		if err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, s.o.AppendTimeout)
		seq, err := s.log.Append(actx, e, version)
		cancel()
		if errors.Is(err, ErrConflict) {
			if err := s.catchUp(ctx, events.CatalogSubject); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return unavailable(err)
		}
		e.Sequence = seq
		_, _ = s.proj.Apply(e)
		return nil
	}
	return &Error{Kind: KindConflict, Code: CodeConcurrent, Message: "the catalog is changing too fast; retry"}
}

// catchUp folds the events of a settings subject (the catalog, user
// settings) that the projection has not seen yet.
func (s *Service) catchUp(ctx context.Context, subject string) error {
	evs, err := s.log.Read(ctx, subject)
	if err != nil {
		return unavailable(err)
	}
	for _, e := range evs {
		_, _ = s.proj.Apply(e)
	}
	return nil
}
