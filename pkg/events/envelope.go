// Package events is Berth's shared contract: the event types of the
// workspace lifecycle and the image catalog, the CloudEvents envelope that
// carries them, the names of the stream and subjects, and the fold that turns
// a workspace's events into its state. It does no I/O.
package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/google/uuid"
)

// SpecVersion is the CloudEvents version of every envelope.
const SpecVersion = "1.0"

// Envelope is one event as stored in the log: a CloudEvents 1.0 structured
// JSON document. Extension attributes (lowercase, as CloudEvents requires)
// carry Berth's audit fields and W3C trace context. Secrets never go in here:
// the log is kept forever and read by auditors.
type Envelope struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            Type      `json:"type"`
	Subject         string    `json:"subject"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	// SchemaVersion is the version of Data's schema for Type.
	SchemaVersion int `json:"schemaversion"`
	// Actor is who caused the event: "user:<sub>", "service:<name>" or
	// "system:<name>" for external systems on the intake subject.
	Actor string `json:"actor"`
	// Reason says why, in words a person reading the audit log understands
	// ("user request", "idle", "retention", "container exited").
	Reason        string `json:"reason,omitempty"`
	CorrelationID string `json:"correlationid,omitempty"`
	// CausationID is the id of the event this one answers (the request a
	// provisioner's observation carries out).
	CausationID string          `json:"causationid,omitempty"`
	TraceParent string          `json:"traceparent,omitempty"`
	TraceState  string          `json:"tracestate,omitempty"`
	Data        json.RawMessage `json:"data"`

	// Sequence is the stream sequence of the stored message; set when the
	// envelope is read from the log, never serialised.
	Sequence uint64 `json:"-"`
}

// Meta is what a writer says about an event besides its payload.
type Meta struct {
	Source        string
	Actor         string
	Reason        string
	CorrelationID string
	CausationID   string
	TraceParent   string
	TraceState    string
}

// ErrUnknownType is returned when decoding an event whose type this version
// of the contract does not know.
var ErrUnknownType = errors.New("unknown event type")

// ErrInvalidEnvelope is returned when an envelope lacks required attributes.
var ErrInvalidEnvelope = errors.New("invalid event envelope")

// New wraps a payload in an envelope with a fresh id. subject is the
// workspace id for workspace events and CatalogSubject for catalog events.
func New(subject string, p Payload, m Meta, now time.Time) (Envelope, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return Envelope{}, fmt.Errorf("marshal %s: %w", p.EventType(), err)
	}
	return Envelope{
		SpecVersion:     SpecVersion,
		ID:              uuid.NewString(),
		Source:          m.Source,
		Type:            p.EventType(),
		Subject:         subject,
		Time:            now.UTC(),
		DataContentType: "application/json",
		SchemaVersion:   CurrentSchemaVersion(p.EventType()),
		Actor:           m.Actor,
		Reason:          m.Reason,
		CorrelationID:   m.CorrelationID,
		CausationID:     m.CausationID,
		TraceParent:     m.TraceParent,
		TraceState:      m.TraceState,
		Data:            data,
	}, nil
}

// Validate checks the attributes every stored event must have.
func (e Envelope) Validate() error {
	switch {
	case e.SpecVersion != SpecVersion:
		return fmt.Errorf("%w: specversion %q, want %q", ErrInvalidEnvelope, e.SpecVersion, SpecVersion)
	case e.ID == "":
		return fmt.Errorf("%w: missing id", ErrInvalidEnvelope)
	case e.Source == "":
		return fmt.Errorf("%w: missing source", ErrInvalidEnvelope)
	case e.Subject == "":
		return fmt.Errorf("%w: missing subject", ErrInvalidEnvelope)
	case e.Time.IsZero():
		return fmt.Errorf("%w: missing time", ErrInvalidEnvelope)
	case e.Actor == "":
		return fmt.Errorf("%w: missing actor", ErrInvalidEnvelope)
	}
	if _, ok := registry[e.Type]; !ok {
		return fmt.Errorf("%w %q", ErrUnknownType, e.Type)
	}
	if e.SchemaVersion < 1 || e.SchemaVersion > CurrentSchemaVersion(e.Type) {
		return fmt.Errorf("%w: schemaversion %d of %s not supported", ErrInvalidEnvelope, e.SchemaVersion, e.Type)
	}
	return nil
}

// Payload decodes Data into the payload struct registered for Type.
func (e Envelope) Payload() (Payload, error) {
	factory, ok := registry[e.Type]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownType, e.Type)
	}
	p := factory()
	if len(e.Data) > 0 {
		if err := jsonv1.Unmarshal(e.Data, p); err != nil {
			return nil, fmt.Errorf("decode %s data: %w", e.Type, err)
		}
	}
	return p, nil
}

// Decode parses a stored message body into an envelope and validates it.
//
// It decodes with the v2 engine in v1 mode (the semantics of
// encoding/json, which wrote every stored event, at about twice the
// speed): every service folds the whole log at its start.
func Decode(body []byte) (Envelope, error) {
	var e Envelope
	if err := jsonv1.Unmarshal(body, &e); err != nil {
		return Envelope{}, fmt.Errorf("%w: %v", ErrInvalidEnvelope, err)
	}
	if err := e.Validate(); err != nil {
		return Envelope{}, err
	}
	return e, nil
}
