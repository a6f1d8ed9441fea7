package app

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/berthdev/berth/pkg/events"
)

// AwaitChange returns workspace id once its version is past after (the
// dashboard's live progress), or ctx's error.
func (s *Service) AwaitChange(ctx context.Context, c Caller, id string, after uint64) (events.Workspace, error) {
	if _, err := s.Get(ctx, c, id); err != nil {
		return events.Workspace{}, err
	}
	err := s.proj.Await(ctx, func() bool {
		ws, ok := s.proj.Workspace(id)
		return !ok || ws.Version > after
	})
	if err != nil {
		return events.Workspace{}, err
	}
	return s.Get(ctx, c, id)
}

// maxProjectFolders bounds the folders Projects lists.
const maxProjectFolders = 2000

// Projects lists the folders under the projects root an admin may give a
// workspace (two levels deep, hidden ones left out), sorted.
func (s *Service) Projects(c Caller) ([]string, error) {
	if !c.Admin {
		return nil, forbidden("only admins pick project folders")
	}
	root := s.o.ProjectsRoot
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == root {
			return nil // an unreadable folder is left out, not fatal
		}
		rel, _ := filepath.Rel(root, path)
		switch {
		case !d.IsDir() || strings.HasPrefix(d.Name(), "."):
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		case len(out) >= maxProjectFolders:
			return filepath.SkipAll
		}
		out = append(out, filepath.ToSlash(rel))
		if strings.Count(rel, string(os.PathSeparator)) >= 1 {
			return filepath.SkipDir // two levels
		}
		return nil
	})
	slices.Sort(out)
	return out, err
}
