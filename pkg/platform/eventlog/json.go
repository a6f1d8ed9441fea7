package eventlog

import (
	"encoding/json"
	"fmt"

	"github.com/berthdev/berth/pkg/events"
)

func jsonMarshal(e events.Envelope) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("marshal event %s: %w", e.ID, err)
	}
	return b, nil
}
