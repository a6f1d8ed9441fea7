package app

import (
	"context"

	"github.com/berthdev/berth/pkg/platform/eventlog"
)

// DeadLetterPage is one page of dead letters; Next is the after of the
// following page (0: none).
type DeadLetterPage struct {
	Entries []eventlog.DeadLetterEntry `json:"entries"`
	Next    uint64                     `json:"next,omitempty"`
}

// DeadLetters lists what consumers could never handle, with the reason and
// where it was published (admins).
func (s *Service) DeadLetters(ctx context.Context, c Caller, after uint64, limit int) (DeadLetterPage, error) {
	if !c.Admin {
		return DeadLetterPage{}, forbidden("only admins read dead letters")
	}
	entries, next, err := s.log.ReadDeadLetters(ctx, after, limit)
	if err != nil {
		return DeadLetterPage{}, unavailable(err)
	}
	if entries == nil {
		entries = []eventlog.DeadLetterEntry{}
	}
	return DeadLetterPage{Entries: entries, Next: next}, nil
}
