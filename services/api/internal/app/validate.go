package app

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/projectpath"
)

func validateName(name string) *FieldError {
	if !events.ValidName(name) {
		return &FieldError{Field: "name", Code: "invalid_name",
			Message: "name must be a DNS label: 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"}
	}
	return nil
}

const maxDescription = 1024

func validateDescription(d string) *FieldError {
	if len(d) > maxDescription {
		return &FieldError{Field: "description", Code: "description_too_long", Message: fmt.Sprintf("description must be at most %d bytes", maxDescription)}
	}
	return nil
}

// imageRef accepts a Docker reference: [registry[:port]/]path[:tag][@digest].
var imageRef = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`)

func validateImageRef(ref string) *FieldError {
	if len(ref) > 255 || !imageRef.MatchString(ref) {
		return &FieldError{Field: "ref", Code: "invalid_image_ref", Message: "ref must be a Docker image reference such as berth/workspace-demo:latest"}
	}
	return nil
}

const maxProjects = 32

// validateProjects resolves every folder under the projects root.
func validateProjects(root string, projects []string) []FieldError {
	var out []FieldError
	if len(projects) > maxProjects {
		return []FieldError{{Field: "projects", Code: "too_many_projects", Message: fmt.Sprintf("at most %d project folders", maxProjects)}}
	}
	seen := map[string]bool{}
	for i, p := range projects {
		field := fmt.Sprintf("projects[%d]", i)
		if seen[p] {
			out = append(out, FieldError{Field: field, Code: "duplicate_project", Message: fmt.Sprintf("project %q is listed twice", p)})
			continue
		}
		seen[p] = true
		if _, err := projectpath.Resolve(root, p); err != nil {
			var pe *projectpath.Error
			if errors.As(err, &pe) {
				out = append(out, FieldError{Field: field, Code: pe.Code, Message: pe.Error()})
			} else {
				out = append(out, FieldError{Field: field, Code: "projects_root_unavailable", Message: err.Error()})
			}
		}
	}
	return out
}

// Bounds are the admin-set limits for workspace resources.
type Bounds struct {
	Default events.Resources
	Max     events.Resources
}

// minDisk is the smallest disk limit: an IDE's home and caches need room.
const minDisk = 64 << 20

// resolveResources fills zero fields from the defaults and checks the
// result against the maxima.
func (b Bounds) resolveResources(in *events.Resources) (events.Resources, []FieldError) {
	r := b.Default
	if in != nil {
		r = overlay(r, *in)
	}
	var out []FieldError
	check := func(field string, v, lo, hi int64) {
		if v < lo || v > hi {
			out = append(out, FieldError{Field: "resources." + field, Code: "resources_out_of_bounds",
				Message: fmt.Sprintf("%s must be between %d and %d", field, lo, hi)})
		}
	}
	check("memory_bytes", r.MemoryBytes, 64<<20, b.Max.MemoryBytes)
	check("milli_cpus", r.MilliCPUs, 10, b.Max.MilliCPUs)
	check("pids", r.Pids, 16, b.Max.Pids)
	if b.Max.DiskBytes > 0 || r.DiskBytes != 0 {
		// Bounds without a disk maximum (built before disk limits) leave
		// the limit to the provisioner's BERTH_MAX_DISK: 0 is the default.
		hi := b.Max.DiskBytes
		if hi == 0 {
			hi = math.MaxInt64
		}
		check("disk_bytes", r.DiskBytes, minDisk, hi)
	}
	return r, out
}

// overlay is r with the limits in set (non-zero) replacing its own.
func overlay(r, in events.Resources) events.Resources {
	if in.MemoryBytes != 0 {
		r.MemoryBytes = in.MemoryBytes
	}
	if in.MilliCPUs != 0 {
		r.MilliCPUs = in.MilliCPUs
	}
	if in.Pids != 0 {
		r.Pids = in.Pids
	}
	if in.DiskBytes != 0 {
		r.DiskBytes = in.DiskBytes
	}
	return r
}

func trimmed(s string) string { return strings.TrimSpace(s) }

func nonNil(fs ...*FieldError) []FieldError {
	var out []FieldError
	for _, f := range fs {
		if f != nil {
			out = append(out, *f)
		}
	}
	return out
}
