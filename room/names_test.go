package room

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidateRoomName(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"a", true},
		{"Team-1.standup_2026", true},
		{strings.Repeat("r", 64), true},
		{"", false},
		{strings.Repeat("r", 65), false},
		{"with space", false},
		{"slash/room", false},
		{"ünïcode", false},
		{"semi;colon", false},
		{"new\nline", false},
	}
	for _, tt := range tests {
		err := ValidateRoomName(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateRoomName(%q) = %v, want ok=%v", tt.in, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadRoomName) {
			t.Errorf("ValidateRoomName(%q) error %v is not ErrBadRoomName", tt.in, err)
		}
	}
}

func TestNormalizeName(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"Ann", "Ann", true},
		{"  Ann Lee \t", "Ann Lee", true},
		{"Zoë 🎉", "Zoë 🎉", true},
		{strings.Repeat("é", 64), strings.Repeat("é", 64), true},
		{strings.Repeat("é", 65), "", false},
		{strings.Repeat("x", 200), "", false},
		{"", "", false},
		{"   ", "", false},
		{"bell\a", "", false},
		{"tab\tinside", "", false},
		{"nul\x00", "", false},
		{"bad \xff utf8", "", false},
	}
	for _, tt := range tests {
		got, err := NormalizeName(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadName) {
			t.Errorf("NormalizeName(%q) error %v is not ErrBadName", tt.in, err)
		}
	}
}

func TestNewIDIsRandomAndSafe(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewID()
		if len(id) != 22 || strings.ContainsAny(id, ":/+= ") {
			t.Fatalf("id %q: want 22 URL-safe characters", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestTokenBucket(t *testing.T) {
	now := time.Unix(0, 0)
	b := NewTokenBucket(10, 3, func() time.Time { return now })
	steps := []struct {
		advance time.Duration
		want    bool
	}{
		{0, true}, {0, true}, {0, true}, // the burst
		{0, false},                     // empty
		{50 * time.Millisecond, false}, // half a token
		{50 * time.Millisecond, true},  // one token after 100 ms
		{0, false},
		{time.Hour, true}, {0, true}, {0, true}, // refilled to the burst, not more
		{0, false},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		if got := b.Allow(); got != s.want {
			t.Errorf("step %d: Allow() = %v, want %v", i, got, s.want)
		}
	}
}
