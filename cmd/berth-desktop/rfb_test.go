package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func msg(b ...byte) []byte { return b }

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// handshake38 is noVNC's side with security type None and a shared session.
var handshake38 = cat([]byte("RFB 003.008\n"), msg(1), msg(1))

var (
	pixelFormat   = cat(msg(0, 0, 0, 0), make([]byte, 16))
	encodings     = cat(msg(2, 0), u16(3), u32(7), u32(0xFFFFFF21), u32(0))
	updateRequest = cat(msg(3, 1), u16(0), u16(0), u16(1280), u16(800))
	key           = cat(msg(4, 1, 0, 0), u32(0x61))
	pointer       = cat(msg(5, 1), u16(10), u16(20))
	paste         = cat(msg(6, 0, 0, 0), u32(5), []byte("hello"))
	extPaste      = cat(msg(6, 0, 0, 0), u32(uint32(0x100000000-4)), msg(1, 2, 3, 4))
	continuous    = cat(msg(150, 1), u16(0), u16(0), u16(1280), u16(800))
	fence         = cat(msg(248, 0, 0, 0), u32(1), msg(3), msg(9, 9, 9))
	desktopSize   = cat(msg(251, 0), u16(1280), u16(800), msg(1, 0), make([]byte, 16))
	qemuKey       = cat(msg(255, 0), u16(1), u32(0x61), u32(30))
)

func TestInputReader(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream []byte
		inputs int
		err    error
	}{
		{"a viewer that only watches", cat(handshake38, pixelFormat, encodings, updateRequest, continuous, fence, desktopSize, updateRequest), 0, nil},
		{"keys, pointer, paste", cat(handshake38, updateRequest, key, pointer, updateRequest, paste, extPaste, qemuKey), 5, nil},
		{"RFB 3.3: no security choice", cat([]byte("RFB 003.003\n"), msg(1), pointer), 1, nil},
		{"VNC authentication's response", cat([]byte("RFB 003.008\n"), msg(2), make([]byte, 16), msg(1), key), 1, nil},
		{"not a viewer", []byte("GET / HTTP/1.1\r\n"), 0, errors.New("not an RFB viewer")},
		{"an unknown message stops reading", cat(handshake38, pointer, msg(99), key), 1, errUnknownMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Whole, and a byte at a time: the websocket splits as it likes.
			for _, chunk := range []int{len(tc.stream), 1, 7} {
				var r inputReader
				got := 0
				var err error
				for p := tc.stream; len(p) > 0 && err == nil; {
					n := min(chunk, len(p))
					var k int
					k, err = r.Feed(p[:n])
					got += k
					p = p[n:]
				}
				if got != tc.inputs {
					t.Errorf("chunks of %d: %d inputs, want %d", chunk, got, tc.inputs)
				}
				switch {
				case tc.err == nil && err != nil:
					t.Errorf("chunks of %d: %v", chunk, err)
				case tc.err != nil && (err == nil || (!errors.Is(err, tc.err) && !bytes.Contains([]byte(err.Error()), []byte(tc.err.Error())))):
					t.Errorf("chunks of %d: error %v, want %v", chunk, err, tc.err)
				}
			}
		})
	}
}
