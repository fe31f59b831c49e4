package room

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Naming limits.
const (
	MaxRoomNameLen = 64
	MaxNameLen     = 64
)

// ValidateRoomName checks a room name: 1–64 characters of [A-Za-z0-9._-].
func ValidateRoomName(s string) error {
	if len(s) == 0 || len(s) > MaxRoomNameLen {
		return fmt.Errorf("%w: must be 1-%d characters", ErrBadRoomName, MaxRoomNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("%w: only letters, digits, '.', '_' and '-' are allowed", ErrBadRoomName)
		}
	}
	return nil
}

// NormalizeName trims a display name and checks it: 1–64 characters
// (runes), valid UTF-8, no control characters.
func NormalizeName(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: not valid UTF-8", ErrBadName)
	}
	n := utf8.RuneCountInString(s)
	if n == 0 || n > MaxNameLen {
		return "", fmt.Errorf("%w: must be 1-%d characters", ErrBadName, MaxNameLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "", fmt.Errorf("%w: control characters are not allowed", ErrBadName)
		}
	}
	return s, nil
}

// NewID returns a random participant id: 128 bits from crypto/rand,
// base64url without padding (22 characters, never containing ':').
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // cannot happen on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}
