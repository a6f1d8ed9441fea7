package events

import "testing"

// TestLogsRequestCheck: the provisioner serves only a workspace id of the
// ids' alphabet and a tail of 1 to MaxLogTail lines.
func TestLogsRequestCheck(t *testing.T) {
	ok := LogsRequest{WorkspaceID: "6f1c8e2a-1b2c-4d5e-8f90-123456789abc", Tail: 200}
	if err := ok.Check(); err != nil {
		t.Fatalf("a good request: %v", err)
	}
	for name, r := range map[string]LogsRequest{
		"no id":         {Tail: 1},
		"label filter":  {WorkspaceID: "x,berth.managed=true", Tail: 1},
		"path":          {WorkspaceID: "../x", Tail: 1},
		"zero lines":    {WorkspaceID: "w", Tail: 0},
		"too many":      {WorkspaceID: "w", Tail: MaxLogTail + 1},
		"negative tail": {WorkspaceID: "w", Tail: -1},
	} {
		if r.Check() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
