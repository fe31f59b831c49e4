package signal

import (
	"errors"
	"testing"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		typ  string
		err  error
	}{
		{"join", `{"type":"join","room":"r","name":"n"}`, TypeJoin, nil},
		{"join with token", `{"type":"join","room":"r","name":"n","token":"t"}`, TypeJoin, nil},
		{"join without room", `{"type":"join","name":"n"}`, "", ErrMissingField},
		{"join without name", `{"type":"join","room":"r"}`, "", ErrMissingField},
		{"offer", `{"type":"offer","sdp":"v=0"}`, TypeOffer, nil},
		{"offer without sdp", `{"type":"offer"}`, "", ErrMissingField},
		{"answer", `{"type":"answer","sdp":"v=0"}`, TypeAnswer, nil},
		{"candidate", `{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0}}`, TypeCandidate, nil},
		{"candidate missing", `{"type":"candidate"}`, "", ErrMissingField},
		{"leave", `{"type":"leave"}`, TypeLeave, nil},
		{"track-update", `{"type":"track-update","track":"t1","source":"screen","muted":true}`, TypeTrackUpdate, nil},
		{"viewport", `{"type":"viewport","track":"TR1","width":320,"height":180,"visible":false}`, TypeViewport, nil},
		{"viewport without visible", `{"type":"viewport","track":"TR1","width":320}`, "", ErrMissingField},
		{"track-update without source", `{"type":"track-update","track":"t1"}`, "", ErrMissingField},
		{"unknown type", `{"type":"dance"}`, "", ErrUnknownType},
		{"no type", `{"room":"r"}`, "", ErrMissingField},
		{"not json", `hello`, "", ErrBadJSON},
		{"array", `[1,2]`, "", ErrBadJSON},
		{"two objects", `{"type":"leave"}{"type":"leave"}`, "", ErrBadJSON},
		{"probe", `{"type":"probe","transport":"tcp"}`, "probe", nil},
		{"probe of another transport", `{"type":"probe","transport":"sctp"}`, "probe", ErrBadField},
		{"wrong field type", `{"type":"join","room":5,"name":"n"}`, "", ErrBadJSON},
		{"truncated", `{"type":"jo`, "", ErrBadJSON},
		{"empty", ``, "", ErrBadJSON},
		{"unknown fields ignored", `{"type":"leave","extra":{"x":1}}`, TypeLeave, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.in))
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("Decode error %v, want %v", err, tt.err)
			}
			if err == nil && m.Type != tt.typ {
				t.Errorf("type %q, want %q", m.Type, tt.typ)
			}
		})
	}
}

func TestDecodeErrorCodes(t *testing.T) {
	for in, code := range map[string]string{
		`nope`:             CodeBadJSON,
		`{"type":"x"}`:     CodeUnknownType,
		`{"type":"offer"}`: CodeBadMessage,
		`{"type":"join"}`:  CodeBadMessage,
	} {
		_, err := Decode([]byte(in))
		if got := decodeErrorCode(err); got != code {
			t.Errorf("%s: code %q, want %q", in, got, code)
		}
	}
}

// FuzzDecode: Decode never panics, and whatever it accepts has a known type
// and the fields that type requires.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"type":"join","room":"r","name":"n"}`,
		`{"type":"offer","sdp":"v=0\r\n"}`,
		`{"type":"candidate","candidate":{"candidate":"x","sdpMid":"0","sdpMLineIndex":0}}`,
		`{"type":"leave"}`, `{"type":null}`, `[]`, `{"type":"join","room":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		switch m.Type {
		case TypeJoin:
			if m.Room == "" || m.Name == "" {
				t.Fatalf("join accepted without room or name: %q", b)
			}
		case TypeOffer, TypeAnswer:
			if m.SDP == "" {
				t.Fatalf("%s accepted without sdp", m.Type)
			}
		case TypeCandidate:
			if m.Candidate == nil {
				t.Fatal("candidate accepted without candidate")
			}
		case TypeTrackUpdate:
			if m.Track == "" || m.Source == "" {
				t.Fatal("track-update accepted without track or source")
			}
		case TypeViewport:
			if m.Track == "" || m.Visible == nil {
				t.Fatal("viewport accepted without track or visible")
			}
		case TypeLeave:
		default:
			t.Fatalf("accepted unknown type %q", m.Type)
		}
	})
}
