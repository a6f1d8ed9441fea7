package httpapi

import "sync"

// DefaultMaxStreams is how many progress streams one caller may hold open
// when Options.MaxStreams is 0.
const DefaultMaxStreams = 8

// streamSlots bounds each caller's open progress streams: each holds a
// connection and a goroutine for up to five minutes, and the rate limit
// counts only their start.
type streamSlots struct {
	mu   sync.Mutex
	open map[string]int
	max  int
}

func newStreamSlots(max int) *streamSlots {
	if max <= 0 {
		max = DefaultMaxStreams
	}
	return &streamSlots{open: map[string]int{}, max: max}
}

// take reserves a slot for key, if one is free.
func (s *streamSlots) take(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[key] >= s.max {
		return false
	}
	s.open[key]++
	return true
}

// release frees a slot taken for key.
func (s *streamSlots) release(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[key] <= 1 {
		delete(s.open, key) // the map holds only callers with open streams
		return
	}
	s.open[key]--
}
