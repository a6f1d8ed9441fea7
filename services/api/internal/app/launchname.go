package app

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// launchName is the name of the caller's workspace of image (one per user
// and image): the home workspace for no image, or for the image the home
// workspace runs, or for the default image while there is no home
// workspace yet; otherwise <home>--<the image's short name>, with a hash of
// the reference added when that name holds another image.
func (s *Service) launchName(subject, image string) string {
	home := s.defaultName(subject)
	if image == "" {
		return home
	}
	if ws, ok := s.proj.WorkspaceByName(home); ok && ws.Owner == subject {
		if ws.Image == image {
			return home
		}
	} else if image == s.DefaultImage() {
		return home
	}
	name := HomeName(subject) + "--" + imageSlug(image)
	if ws, ok := s.proj.WorkspaceByName(name); ok && ws.Image != image {
		return name + "-" + refHash(image)
	}
	return name
}

// imageSlug is an image reference's short name, a DNS label part: the
// repository's last path element without a "workspace-" prefix, and the
// tag unless it is "latest" (berth/workspace-desktop:latest → desktop,
// example.org/team/python:3.12 → python-3-12).
func imageSlug(ref string) string {
	ref, _, _ = strings.Cut(ref, "@") // a digest is not a name
	repo, tag := ref, ""
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo, tag = ref[:i], ref[i+1:]
	}
	name := repo[strings.LastIndex(repo, "/")+1:]
	name = strings.TrimPrefix(name, "workspace-")
	if tag != "" && tag != "latest" {
		name += "-" + tag
	}
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	slug := strings.Trim(b.String(), "-")
	if len(slug) > 24 {
		slug = strings.TrimRight(slug[:24], "-")
	}
	if slug == "" {
		return "image"
	}
	return slug
}

// refHash tells apart images whose short names are the same.
func refHash(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return hex.EncodeToString(sum[:3])
}
