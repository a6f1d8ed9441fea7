// Package intake is the contract for other systems that ask Berth to act:
// commands are CloudEvents 1.0 in either mode of the NATS protocol binding,
// with a JSON Schema per type. Parse turns a NATS message (its headers and
// body) into a checked command, or an *Error with a stable code; it never
// panics on any input.
package intake

import (
	"bytes"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Command types.
const (
	TypeCreate   = "berth.intake.workspace.create"
	TypeStart    = "berth.intake.workspace.start"
	TypeStop     = "berth.intake.workspace.stop"
	TypeDelete   = "berth.intake.workspace.delete"
	TypeUpdate   = "berth.intake.workspace.update"
	TypeActivity = "berth.intake.activity"
)

// Types are every command type, each with its schema.
var Types = []string{TypeCreate, TypeStart, TypeStop, TypeDelete, TypeUpdate, TypeActivity}

// MaxSize bounds a command (headers' values and body together are far
// below it in practice); larger ones are refused unread.
const MaxSize = 64 << 10

// Stable codes of refused commands.
const (
	CodeTooLarge         = "too_large"
	CodeNotJSON          = "not_json"
	CodeMissingAttribute = "missing_attribute"
	CodeSpecVersion      = "wrong_specversion"
	CodeUnknownType      = "unknown_type"
	CodeContentType      = "unsupported_content_type"
	CodeSchema           = "schema_violation"
)

// Error is a refused command: a stable code and a message for the sender.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func refuse(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Command is a checked CloudEvent: its context attributes and data, which
// matches its type's schema.
type Command struct {
	ID      string
	Source  string
	Type    string
	Subject string
	Time    time.Time
	Data    json.RawMessage
}

// event is a CloudEvent in structured mode.
type event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
	DataBase64      string          `json:"data_base64"`
}

// Parse reads a command from a NATS message: structured mode when its
// Content-Type is application/cloudevents+json, binary mode (ce-* headers,
// values percent-decoded, names matched case-insensitively) otherwise.
func Parse(header map[string][]string, body []byte) (Command, error) {
	if len(body) > MaxSize {
		return Command{}, refuse(CodeTooLarge, "%d bytes; a command is at most %d", len(body), MaxSize)
	}
	ct := get(header, "content-type")
	var (
		e   event
		err *Error
	)
	if media, _, _ := mime.ParseMediaType(ct); media == "application/cloudevents+json" {
		e, err = structured(body)
	} else {
		e, err = binary(header, ct, body)
	}
	if err != nil {
		return Command{}, err
	}
	return check(e)
}

func structured(body []byte) (event, *Error) {
	var e event
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&e); err != nil {
		return e, refuse(CodeNotJSON, "the body is not a structured CloudEvent: %v", err)
	}
	if e.DataBase64 != "" {
		raw, err := base64.StdEncoding.DecodeString(e.DataBase64)
		if err != nil {
			return e, refuse(CodeNotJSON, "data_base64 is not base64: %v", err)
		}
		e.Data = raw
	}
	return e, nil
}

func binary(header map[string][]string, ct string, body []byte) (event, *Error) {
	if ct != "" {
		if media, _, _ := mime.ParseMediaType(ct); media != "application/json" {
			return event{}, refuse(CodeContentType, "content-type %q: data must be application/json (or send a structured event as application/cloudevents+json)", ct)
		}
	}
	e := event{DataContentType: ct, Data: body}
	for name, dst := range map[string]*string{"specversion": &e.SpecVersion, "id": &e.ID, "source": &e.Source,
		"type": &e.Type, "subject": &e.Subject, "time": &e.Time} {
		v, err := url.PathUnescape(get(header, "ce-"+name))
		if err != nil {
			return e, refuse(CodeMissingAttribute, "ce-%s is not correctly percent-encoded", name)
		}
		*dst = v
	}
	return e, nil
}

// get is a header's first value, its name matched case-insensitively.
func get(header map[string][]string, name string) string {
	for k, v := range header {
		if len(v) > 0 && strings.EqualFold(k, name) {
			return v[0]
		}
	}
	return ""
}

func check(e event) (Command, error) {
	switch {
	case e.SpecVersion == "":
		return Command{}, refuse(CodeMissingAttribute, "specversion is missing")
	case e.SpecVersion != "1.0":
		return Command{}, refuse(CodeSpecVersion, "specversion %q; Berth takes CloudEvents 1.0", e.SpecVersion)
	case e.ID == "" || e.Source == "" || e.Type == "":
		return Command{}, refuse(CodeMissingAttribute, "id, source and type are required")
	case len(e.ID) > 256 || len(e.Source) > 256:
		return Command{}, refuse(CodeMissingAttribute, "id and source are at most 256 characters")
	}
	if e.DataContentType != "" {
		if media, _, _ := mime.ParseMediaType(e.DataContentType); media != "application/json" {
			return Command{}, refuse(CodeContentType, "datacontenttype %q: data must be application/json", e.DataContentType)
		}
	}
	c := Command{ID: e.ID, Source: e.Source, Type: e.Type, Subject: e.Subject, Data: e.Data}
	if e.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil {
			return Command{}, refuse(CodeMissingAttribute, "time %q is not RFC 3339", e.Time)
		}
		c.Time = t
	}
	if err := Validate(e.Type, e.Data); err != nil {
		return Command{}, err
	}
	return c, nil
}

//go:embed schemas/*.json
var schemaFiles embed.FS

var (
	compileOnce sync.Once
	compiled    map[string]*jsonschema.Schema
	compileErr  error
)

// Schema returns a type's JSON Schema document.
func Schema(typ string) ([]byte, bool) {
	b, err := schemaFiles.ReadFile("schemas/" + strings.TrimPrefix(typ, "berth.intake.") + ".json")
	return b, err == nil && known(typ)
}

func known(typ string) bool {
	for _, t := range Types {
		if t == typ {
			return true
		}
	}
	return false
}

// Validate checks data against typ's schema.
func Validate(typ string, data json.RawMessage) error {
	compileOnce.Do(compileSchemas)
	if compileErr != nil {
		return compileErr
	}
	sch, ok := compiled[typ]
	if !ok {
		return refuse(CodeUnknownType, "type %q; Berth takes %s", typ, strings.Join(Types, ", "))
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return refuse(CodeSchema, "%s needs data (a JSON object)", typ)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return refuse(CodeNotJSON, "data is not JSON: %v", err)
	}
	if err := sch.Validate(doc); err != nil {
		return refuse(CodeSchema, "data does not match the schema of %s: %v", typ, schemaMessage(err))
	}
	return nil
}

// schemaMessage is the validator's complaint in one line.
func schemaMessage(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func compileSchemas() {
	c := jsonschema.NewCompiler()
	compiled = map[string]*jsonschema.Schema{}
	for _, typ := range Types {
		raw, _ := Schema(typ)
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			compileErr = fmt.Errorf("schema of %s: %w", typ, err)
			return
		}
		url := "https://berth.dev/schemas/" + typ + ".json"
		if err := c.AddResource(url, doc); err != nil {
			compileErr = fmt.Errorf("schema of %s: %w", typ, err)
			return
		}
		if compiled[typ], err = c.Compile(url); err != nil {
			compileErr = fmt.Errorf("schema of %s: %w", typ, err)
			return
		}
	}
}
