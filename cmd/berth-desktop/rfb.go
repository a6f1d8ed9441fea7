package main

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// inputReader follows what a VNC viewer sends to the server (RFB, RFC 6143,
// plus the extensions noVNC uses with TigerVNC) and reports the messages a
// person caused: key and pointer events and pasted text. Everything else a
// viewer sends by itself (update requests, encodings, fences, its window's
// size), so an open but untouched desktop tab is idle. Pure: fed bytes,
// it keeps no more than one message header.
type inputReader struct {
	handshake []byte // the viewer's handshake so far, until it is complete
	done      bool   // handshake over: messages follow
	hdr       []byte // the current message's header so far
	skip      int    // bytes of the current message still to pass
	input     bool   // the current message is a person's
	err       error  // sticky: the stream is not what was expected
}

// errUnknownMessage: a message type this reader cannot size. Reading stops
// there (the bytes still flow): guessing would count noise as input.
var errUnknownMessage = errors.New("unknown RFB client message")

// Feed reads p and returns how many of a person's messages ended in it.
func (r *inputReader) Feed(p []byte) (int, error) {
	inputs := 0
	for len(p) > 0 && r.err == nil {
		if !r.done {
			p = r.feedHandshake(p)
			continue
		}
		if r.skip > 0 {
			n := min(r.skip, len(p))
			r.skip -= n
			p = p[n:]
			if r.skip == 0 {
				if r.input {
					inputs++
				}
				r.hdr = r.hdr[:0]
			}
			continue
		}
		r.hdr = append(r.hdr, p[0])
		p = p[1:]
		total, input, err := messageLength(r.hdr)
		switch {
		case err != nil:
			r.err = err
		case total > 0 && total == len(r.hdr):
			if input {
				inputs++
			}
			r.hdr = r.hdr[:0]
		case total > len(r.hdr):
			r.skip, r.input = total-len(r.hdr), input
		}
	}
	return inputs, r.err
}

// feedHandshake takes the viewer's side of the handshake: the protocol
// version (12 bytes), the security type it chose (3.7 and later: 1 byte)
// with the VNC authentication response where chosen (16 bytes), and the
// ClientInit (1 byte).
func (r *inputReader) feedHandshake(p []byte) []byte {
	for len(p) > 0 && !r.done && r.err == nil {
		r.handshake = append(r.handshake, p[0])
		p = p[1:]
		n := len(r.handshake)
		if n < 12 {
			continue
		}
		v := string(r.handshake[:12])
		if n == 12 && (len(v) != 12 || v[:4] != "RFB ") {
			r.err = fmt.Errorf("not an RFB viewer: %q", v)
			return p
		}
		want := 14 // version, security type None, ClientInit
		if v == "RFB 003.003\n" {
			want = 13 // 3.3: the server chose the security type
		} else if n >= 13 && r.handshake[12] == 2 {
			want = 30 // VNC authentication: a 16-byte response
		}
		if n == want {
			r.done = true
		}
	}
	return p
}

// messageLength is the whole length of the client message whose header is
// hdr (0: more header needed) and whether a person caused it.
func messageLength(hdr []byte) (total int, input bool, err error) {
	switch hdr[0] {
	case 0: // SetPixelFormat
		return 20, false, nil
	case 2: // SetEncodings: a count, then 4 bytes each
		if len(hdr) < 4 {
			return 0, false, nil
		}
		return 4 + 4*int(binary.BigEndian.Uint16(hdr[2:4])), false, nil
	case 3: // FramebufferUpdateRequest
		return 10, false, nil
	case 4: // KeyEvent
		return 8, true, nil
	case 5: // PointerEvent
		return 6, true, nil
	case 6: // ClientCutText; a negative length is the extended clipboard's
		if len(hdr) < 8 {
			return 0, false, nil
		}
		n := int32(binary.BigEndian.Uint32(hdr[4:8]))
		if n < 0 {
			n = -n
		}
		return 8 + int(n), true, nil
	case 150: // EnableContinuousUpdates
		return 10, false, nil
	case 248: // ClientFence: flags, then a payload of up to 64 bytes
		if len(hdr) < 9 {
			return 0, false, nil
		}
		return 9 + int(hdr[8]), false, nil
	case 251: // SetDesktopSize: 16 bytes per screen
		if len(hdr) < 7 {
			return 0, false, nil
		}
		return 8 + 16*int(hdr[6]), false, nil
	case 252: // xvp
		return 4, false, nil
	case 255: // QEMU: subtype 0 is the extended key event
		if len(hdr) < 2 {
			return 0, false, nil
		}
		if hdr[1] == 0 {
			return 12, true, nil
		}
	}
	return 0, false, fmt.Errorf("%w %d", errUnknownMessage, hdr[0])
}
