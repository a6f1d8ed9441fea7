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
		return &events.ImageAdded{Ref: in.Ref, Description: in.Description, CapAdd: caps, Profile: in.Profile}, nil
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
			return nil, &Error{Kind: KindNotFound, Code: CodeImageNotFound, Message: fmt.Sprintf("image %q is not in the catalog", ref)}
		}
		return &events.ImageRemoved{Ref: ref}, nil
	})
}

// Images lists the catalog.
func (s *Service) Images() []events.CatalogImage {
	imgs, _ := s.proj.Catalog()
	return imgs
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
