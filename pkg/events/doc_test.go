package events

import (
	"os"
	"strings"
	"testing"
)

// TestCatalogDocumentsEverything keeps docs/events.md honest: it must name
// every event type, every status and every subject constant.
func TestCatalogDocumentsEverything(t *testing.T) {
	b, err := os.ReadFile("../../docs/events.md")
	if err != nil {
		t.Fatalf("read catalog: %v", err)
	}
	doc := string(b)
	for _, typ := range Types() {
		if !strings.Contains(doc, "`"+string(typ)+"`") {
			t.Errorf("docs/events.md does not document %s", typ)
		}
	}
	for _, s := range Statuses() {
		if s != StatusNone && !strings.Contains(doc, "`"+string(s)+"`") {
			t.Errorf("docs/events.md does not document status %s", s)
		}
	}
	for _, name := range []string{Stream, WorkspaceSubjectPrefix, CatalogSubject, NameClaimsBucket, ServiceStatusBucket, ActivityBucket, IntakeSubjectPrefix, DeadLetterSubjectPrefix} {
		if !strings.Contains(doc, name) {
			t.Errorf("docs/events.md does not mention %s", name)
		}
	}
}
