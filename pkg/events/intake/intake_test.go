package intake_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/berthdev/berth/pkg/events/intake"
)

const createData = `{"name":"alice-lab","owner":"alice","projects":["course-101"]}`

// TestParseBothModes: the same command as a structured and as a binary
// CloudEvent (header names in any case, values percent-decoded).
func TestParseBothModes(t *testing.T) {
	structured := `{"specversion":"1.0","id":"e-1","source":"lms/moodle","type":"berth.intake.workspace.create","time":"2026-11-24T14:02:00Z","datacontenttype":"application/json","data":` + createData + `}`
	a, err := intake.Parse(map[string][]string{"Content-Type": {"application/cloudevents+json; charset=utf-8"}}, []byte(structured))
	if err != nil {
		t.Fatal(err)
	}
	b, err := intake.Parse(map[string][]string{
		"CE-SpecVersion": {"1.0"}, "ce-id": {"e-1"}, "Ce-Source": {"lms%2Fmoodle"}, "ce-type": {"berth.intake.workspace.create"},
		"ce-time": {"2026-11-24T14:02:00Z"}, "content-type": {"application/json"},
	}, []byte(createData))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID || a.Source != "lms/moodle" || b.Source != "lms/moodle" || a.Type != b.Type || !a.Time.Equal(b.Time) {
		t.Fatalf("modes disagree: %+v vs %+v", a, b)
	}
	var x, y map[string]any
	_ = json.Unmarshal(a.Data, &x)
	_ = json.Unmarshal(b.Data, &y)
	if x["owner"] != "alice" || y["owner"] != "alice" {
		t.Fatalf("data: %s / %s", a.Data, b.Data)
	}
	enc := `{"specversion":"1.0","id":"e-2","source":"ci","type":"berth.intake.workspace.start","data_base64":"eyJ3b3Jrc3BhY2UiOiJhbGljZS1sYWIifQ=="}`
	if c, err := intake.Parse(map[string][]string{"content-type": {"application/cloudevents+json"}}, []byte(enc)); err != nil || !strings.Contains(string(c.Data), "alice-lab") {
		t.Fatalf("data_base64: %+v %v", c, err)
	}
}

// TestParseRefusesGarbage: every kind of bad input gets its stable code,
// never a panic.
func TestParseRefusesGarbage(t *testing.T) {
	ce := map[string][]string{"content-type": {"application/cloudevents+json"}}
	bin := func(typ, data string) (map[string][]string, []byte) {
		return map[string][]string{"ce-specversion": {"1.0"}, "ce-id": {"x"}, "ce-source": {"s"}, "ce-type": {typ}}, []byte(data)
	}
	big := `{"specversion":"1.0","id":"x","source":"s","type":"berth.intake.workspace.create","data":{"name":"a","owner":"` + strings.Repeat("o", 1<<20) + `"}}`
	cases := []struct {
		name   string
		header map[string][]string
		body   string
		code   string
	}{
		{"not JSON", ce, "hello", intake.CodeNotJSON},
		{"empty", ce, "", intake.CodeNotJSON},
		{"JSON array", ce, "[1,2]", intake.CodeNotJSON},
		{"1 MB payload", ce, big, intake.CodeTooLarge},
		{"no specversion", ce, `{"id":"x","source":"s","type":"berth.intake.workspace.start","data":{"workspace":"w"}}`, intake.CodeMissingAttribute},
		{"wrong specversion", ce, `{"specversion":"0.3","id":"x","source":"s","type":"berth.intake.workspace.start","data":{"workspace":"w"}}`, intake.CodeSpecVersion},
		{"no id", ce, `{"specversion":"1.0","source":"s","type":"berth.intake.workspace.start","data":{"workspace":"w"}}`, intake.CodeMissingAttribute},
		{"unknown type", ce, `{"specversion":"1.0","id":"x","source":"s","type":"berth.intake.workspace.explode","data":{}}`, intake.CodeUnknownType},
		{"schema: extra field", ce, `{"specversion":"1.0","id":"x","source":"s","type":"berth.intake.workspace.start","data":{"workspace":"w","root":true}}`, intake.CodeSchema},
		{"schema: bad name", ce, `{"specversion":"1.0","id":"x","source":"s","type":"berth.intake.workspace.create","data":{"name":"Bad Name!","owner":"a"}}`, intake.CodeSchema},
		{"schema: no data", ce, `{"specversion":"1.0","id":"x","source":"s","type":"berth.intake.workspace.stop"}`, intake.CodeSchema},
		{"schema: update changes nothing", ce, `{"specversion":"1.0","id":"x","source":"s","type":"berth.intake.workspace.update","data":{"workspace":"w"}}`, intake.CodeSchema},
		{"bad time", ce, `{"specversion":"1.0","id":"x","source":"s","type":"berth.intake.workspace.stop","time":"yesterday","data":{"workspace":"w"}}`, intake.CodeMissingAttribute},
		{"XML data", ce, `{"specversion":"1.0","id":"x","source":"s","type":"berth.intake.workspace.stop","datacontenttype":"application/xml","data":{"workspace":"w"}}`, intake.CodeContentType},
		{"bad base64", ce, `{"specversion":"1.0","id":"x","source":"s","type":"berth.intake.workspace.stop","data_base64":"%%%"}`, intake.CodeNotJSON},
	}
	for _, c := range cases {
		_, err := intake.Parse(c.header, []byte(c.body))
		var e *intake.Error
		if !errors.As(err, &e) || e.Code != c.code {
			t.Errorf("%s: %v, want code %s", c.name, err, c.code)
		}
	}
	h, body := bin("berth.intake.workspace.stop", `not json`)
	if _, err := intake.Parse(h, body); !isCode(err, intake.CodeNotJSON) {
		t.Errorf("binary, body not JSON: %v", err)
	}
	h, body = bin("berth.intake.workspace.stop", `{"workspace":"w"}`)
	h["content-type"] = []string{"text/plain"}
	if _, err := intake.Parse(h, body); !isCode(err, intake.CodeContentType) {
		t.Errorf("binary, text/plain: %v", err)
	}
	h, body = bin("berth.intake.workspace.stop", `{"workspace":"w"}`)
	h["ce-source"] = []string{"bad%zzescape"}
	if _, err := intake.Parse(h, body); !isCode(err, intake.CodeMissingAttribute) {
		t.Errorf("binary, bad percent-encoding: %v", err)
	}
}

func isCode(err error, code string) bool {
	var e *intake.Error
	return errors.As(err, &e) && e.Code == code
}

// TestSchemasPublished: every type has a schema that is valid JSON and
// names itself.
func TestSchemasPublished(t *testing.T) {
	for _, typ := range intake.Types {
		raw, ok := intake.Schema(typ)
		if !ok {
			t.Errorf("%s: no schema", typ)
			continue
		}
		var s struct{ Title string }
		if err := json.Unmarshal(raw, &s); err != nil || s.Title != typ {
			t.Errorf("%s: schema %v, title %q", typ, err, s.Title)
		}
	}
	if _, ok := intake.Schema("berth.intake.nope"); ok {
		t.Error("a schema for an unknown type")
	}
}
