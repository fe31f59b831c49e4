package signal

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// A token checks only with the key that signed it, only before its
// expiry, and only as it was minted: any change to its claims breaks it.
func TestResumeToken(t *testing.T) {
	s, err := newResumeSigner(time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok := s.mint("room-a", "P1", now)
	c, err := s.check(tok, now)
	if err != nil || c.Room != "room-a" || c.Participant != "P1" {
		t.Fatalf("fresh token: %+v, %v", c, err)
	}
	if _, err := s.check(tok, now.Add(time.Minute)); resumeReason(err) != ResumeExpired {
		t.Errorf("at expiry: %v, want %s", err, ResumeExpired)
	}
	other, _ := newResumeSigner(time.Minute, nil) // a restarted server
	if _, err := other.check(tok, now); resumeReason(err) != ResumeInvalid {
		t.Errorf("another key: %v, want %s", err, ResumeInvalid)
	}
	payload, sig, _ := strings.Cut(tok, ".")
	claims, _ := base64.RawURLEncoding.DecodeString(payload)
	forged := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(claims), "P1", "P2", 1))) + "." + sig
	for name, bad := range map[string]string{
		"other participant": forged,
		"no signature":      payload,
		"empty":             "",
		"garbage":           "a.b.c",
		"bad base64":        payload + ".!!!",
	} {
		if _, err := s.check(bad, now); resumeReason(err) != ResumeInvalid {
			t.Errorf("%s: %v, want %s", name, err, ResumeInvalid)
		}
	}
}
