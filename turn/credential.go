package turn

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // TURN REST API credentials are HMAC-SHA1 by definition
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Credential mints a TURN credential for one participant in the TURN REST
// API form (draft-uberti-behave-turn-rest-00 §2.2), the one coturn accepts
// with use-auth-secret: the username is "<expiry>:<participant>", expiry
// in Unix seconds, and the password is base64(HMAC-SHA1(secret,
// username)). Whoever knows secret can check it without any state.
func Credential(secret, participant string, expires time.Time) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + participant
	return username, restPassword(secret, username)
}

func restPassword(secret, username string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Errors a credential is refused with (TURN error 401).
var (
	// ErrBadUsername: the username is not "<expiry>:<participant>".
	ErrBadUsername = errors.New("turn: username is not <expiry>:<participant>")
	// ErrExpired: the username's expiry has passed.
	ErrExpired = errors.New("turn: credential expired")
	// ErrUnknownParticipant: the participant is not in a room of this server.
	ErrUnknownParticipant = errors.New("turn: participant is not in a room")
	// ErrBadIntegrity: MESSAGE-INTEGRITY does not match the password the
	// secret gives for the username (a forged or foreign credential).
	ErrBadIntegrity = errors.New("turn: message integrity does not match")
)

// parseUsername splits a REST API username into its expiry and participant.
func parseUsername(u string) (time.Time, string, error) {
	exp, who, ok := strings.Cut(u, ":")
	if !ok || who == "" {
		return time.Time{}, "", fmt.Errorf("%w: %q", ErrBadUsername, u)
	}
	sec, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("%w: %q", ErrBadUsername, u)
	}
	return time.Unix(sec, 0), who, nil
}
