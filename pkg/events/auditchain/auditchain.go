// Package auditchain is the format of Berth's audit exports: NDJSON whose
// lines chain by SHA-256, so a copy can be checked on its own. The first
// line is a header naming the first sequence (the chain's anchor), then one
// line per event, then a trailer with the count and the last hash.
//
// A line's hash covers the previous line's hash, the event's stream
// sequence and the event's canonical JSON (keys sorted, no spaces). Edit,
// drop, insert or reorder a line and verification stops at it. The chain
// has no secret: whoever rewrites every hash after an edit makes a
// consistent file, which is why an export is compared with the live log
// (docs/audit.md).
package auditchain

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Version names the format in the header.
const Version = "berth-audit-v1"

// Header is the first line.
type Header struct {
	Format        string `json:"format"`
	FirstSequence uint64 `json:"first_sequence"`
	Since         string `json:"since,omitempty"`
	Until         string `json:"until,omitempty"`
}

// Line is one event of the export.
type Line struct {
	Sequence uint64          `json:"sequence"`
	Event    json.RawMessage `json:"event"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
}

// Trailer is the last line: how many events, and the last hash.
type Trailer struct {
	Count    int    `json:"count"`
	LastHash string `json:"last_hash"`
}

// Anchor is the prev_hash of an export's first event: the header, so an
// edited range (first sequence, since, until) breaks the chain too.
func Anchor(h Header) string {
	sum := sha256.Sum256([]byte(Version + "|" + strconv.FormatUint(h.FirstSequence, 10) + "|" + h.Since + "|" + h.Until))
	return hex.EncodeToString(sum[:])
}

// Canonical re-encodes JSON with sorted keys, no insignificant space, no
// HTML escaping (<, > and & as themselves), numbers kept as written: what
// any verifier following docs/audit.md produces.
func Canonical(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("event is not JSON: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // maps encode with sorted keys
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Hash chains one event to the hash before it.
func Hash(prev string, seq uint64, canonical []byte) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write([]byte{'|'})
	h.Write([]byte(strconv.FormatUint(seq, 10)))
	h.Write([]byte{'|'})
	h.Write(canonical)
	return hex.EncodeToString(h.Sum(nil))
}

// Writer writes an export.
type Writer struct {
	enc   *json.Encoder
	prev  string
	count int
	last  uint64
}

// NewWriter writes the header; first is the sequence of the first event
// that will follow (any sequence when none will).
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	h.Format = Version
	h.FirstSequence = max(h.FirstSequence, 1)
	enc := json.NewEncoder(w)
	if err := enc.Encode(h); err != nil {
		return nil, err
	}
	return &Writer{enc: enc, prev: Anchor(h), last: h.FirstSequence - 1}, nil
}

// Write adds one event, its stored JSON and stream sequence.
func (w *Writer) Write(seq uint64, event []byte) error {
	if seq <= w.last {
		return fmt.Errorf("sequence %d after %d: an export is in stream order, from its first sequence", seq, w.last)
	}
	canon, err := Canonical(event)
	if err != nil {
		return err
	}
	hash := Hash(w.prev, seq, canon)
	if err := w.enc.Encode(Line{Sequence: seq, Event: canon, PrevHash: w.prev, Hash: hash}); err != nil {
		return err
	}
	w.prev, w.count, w.last = hash, w.count+1, seq
	return nil
}

// Close writes the trailer.
func (w *Writer) Close() error { return w.enc.Encode(Trailer{Count: w.count, LastHash: w.prev}) }

// BadLine says where and why a file fails verification (lines count from 1).
type BadLine struct {
	Line   int
	Reason string
}

func (b *BadLine) Error() string { return fmt.Sprintf("line %d: %s", b.Line, b.Reason) }

// Verify reads an export and returns how many events it holds, or a
// *BadLine naming the first line that does not hold.
func Verify(r io.Reader) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	v := verifier{}
	for sc.Scan() {
		v.n++
		if err := v.line(sc.Bytes()); err != nil {
			return 0, &BadLine{Line: v.n, Reason: err.Error()}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, &BadLine{Line: v.n + 1, Reason: err.Error()}
	}
	if !v.ended {
		return 0, &BadLine{Line: v.n + 1, Reason: "the trailer is missing: the export was cut short"}
	}
	return v.count, nil
}

// verifier is Verify's state between lines.
type verifier struct {
	n, count int
	started  bool
	ended    bool
	prev     string
	last     uint64
}

func (v *verifier) line(b []byte) error {
	switch {
	case v.ended:
		return errors.New("a line after the trailer")
	case !v.started:
		return v.header(b)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return fmt.Errorf("not JSON: %v", err)
	}
	if _, ok := probe["last_hash"]; ok {
		return v.trailer(b)
	}
	return v.event(b)
}

func (v *verifier) header(b []byte) error {
	var h Header
	if err := json.Unmarshal(b, &h); err != nil || h.Format != Version || h.FirstSequence == 0 {
		return fmt.Errorf("not a %s header (format and first_sequence >= 1)", Version)
	}
	v.started, v.prev = true, Anchor(h)
	v.last = h.FirstSequence - 1
	return nil
}

func (v *verifier) event(b []byte) error {
	var l Line
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("not an export line: %v", err)
	}
	if l.Sequence <= v.last {
		return fmt.Errorf("sequence %d after %d: lines out of order", l.Sequence, v.last)
	}
	if l.PrevHash != v.prev {
		return errors.New("prev_hash does not match the line before: a line was removed, inserted or moved")
	}
	canon, err := Canonical(l.Event)
	if err != nil {
		return err
	}
	if Hash(l.PrevHash, l.Sequence, canon) != l.Hash {
		return errors.New("hash does not match the event: the line was edited")
	}
	v.prev, v.last, v.count = l.Hash, l.Sequence, v.count+1
	return nil
}

func (v *verifier) trailer(b []byte) error {
	var t Trailer
	if err := json.Unmarshal(b, &t); err != nil {
		return fmt.Errorf("not a trailer: %v", err)
	}
	if t.Count != v.count || t.LastHash != v.prev {
		return fmt.Errorf("the trailer counts %d events ending in %.12s, the file has %d ending in %.12s: lines were removed or added", t.Count, t.LastHash, v.count, v.prev)
	}
	v.ended = true
	return nil
}
