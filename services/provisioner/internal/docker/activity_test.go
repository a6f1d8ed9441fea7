package docker

import (
	"encoding/json"
	"testing"
	"time"
)

// TestTimeAt: the activity times IDEs report, in their own shapes.
func TestTimeAt(t *testing.T) {
	cases := map[string]struct {
		doc, field string
		want       time.Time
		ok         bool
		err        bool
	}{
		"code-server ms":  {`{"status":"alive","lastHeartbeat":1764000000123}`, "lastHeartbeat", time.UnixMilli(1764000000123), true, false},
		"jupyter rfc3339": {`{"last_activity":"2026-11-24T14:02:00.5Z"}`, "last_activity", time.Date(2026, 11, 24, 14, 2, 0, 5e8, time.UTC), true, false},
		"seconds":         {`{"a":{"b":1764000000}}`, "a.b", time.Unix(1764000000, 0), true, false},
		"missing":         {`{"other":1}`, "last_activity", time.Time{}, false, false},
		"zero":            {`{"lastHeartbeat":0}`, "lastHeartbeat", time.Time{}, false, false},
		"not a time":      {`{"last_activity":"yesterday"}`, "last_activity", time.Time{}, false, true},
		"an object":       {`{"last_activity":{}}`, "last_activity", time.Time{}, false, true},
	}
	for name, c := range cases {
		var doc any
		if err := json.Unmarshal([]byte(c.doc), &doc); err != nil {
			t.Fatal(err)
		}
		got, ok, err := timeAt(doc, c.field)
		if !got.Equal(c.want) || ok != c.ok || (err != nil) != c.err {
			t.Errorf("%s: %v %v %v", name, got, ok, err)
		}
	}
}

// TestHasValue: a busy probe's answer, as Jupyter and others give it.
func TestHasValue(t *testing.T) {
	cases := map[string]struct {
		doc, field, value string
		want              bool
	}{
		"a busy kernel":     {`[{"id":"a","execution_state":"idle"},{"id":"b","execution_state":"busy"}]`, "execution_state", "busy", true},
		"idle kernels":      {`[{"id":"a","execution_state":"idle"}]`, "execution_state", "busy", false},
		"no kernels":        {`[]`, "execution_state", "busy", false},
		"an object":         {`{"state":{"name":"busy"}}`, "state.name", "busy", true},
		"a number":          {`{"running":2}`, "running", "2", true},
		"a boolean":         {`{"busy":true}`, "busy", "true", true},
		"not a scalar":      {`{"execution_state":["busy"]}`, "execution_state", "busy", false},
		"a list in a list":  {`[[{"s":"busy"}]]`, "s", "busy", true},
		"field of a string": {`"busy"`, "execution_state", "busy", false},
		"another value":     {`{"execution_state":"starting"}`, "execution_state", "busy", false},
	}
	for name, c := range cases {
		var doc any
		if err := json.Unmarshal([]byte(c.doc), &doc); err != nil {
			t.Fatal(err)
		}
		if got := hasValue(doc, c.field, c.value); got != c.want {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}
}
