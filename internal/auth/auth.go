// Package auth mints and checks Roundtable's join tokens: JSON Web Tokens
// (RFC 7519) signed with HMAC-SHA256 by the operator's API secret, issued
// under the API key, naming one room, one identity, a display name, a
// validity window and what the holder may do (Grants). Parsing and
// signature checks are github.com/golang-jwt/jwt/v5's; this package only
// says which claims Roundtable needs and maps each failure to one error.
//
// It owns no state beyond the key and secret, and must not know about
// rooms, sockets or media: signal checks a token at join, room enforces
// the grants.
package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Each way a token can be refused; signal maps them to error codes.
var (
	ErrMissing     = errors.New("auth: a token is required")
	ErrMalformed   = errors.New("auth: token is malformed")
	ErrSignature   = errors.New("auth: token signature or key is wrong")
	ErrExpired     = errors.New("auth: token has expired")
	ErrNotYetValid = errors.New("auth: token is not valid yet")
	ErrWrongRoom   = errors.New("auth: token is for another room")
	ErrNoGrants    = errors.New("auth: token grants nothing")
	ErrNotAdmin    = errors.New("auth: token has no admin grant")
)

// Grants say what a participant may do.
type Grants struct {
	Publish     bool `json:"publish"`     // send audio and video
	Subscribe   bool `json:"subscribe"`   // receive the others' audio and video
	PublishData bool `json:"publishData"` // send data-channel messages
	Admin       bool `json:"admin"`       // the admin API (CheckAdmin), for the token's room or AllRooms
	// Listed: a WHEP viewer with this token is a member the others see
	// (join, leave, no tracks); without it, only the operator sees it.
	Listed bool `json:"listed,omitempty"`
}

// All is what an open server (no secret) grants everyone.
var All = Grants{Publish: true, Subscribe: true, PublishData: true}

// Claims are a token's contents: the registered claims iss (API key), sub
// (identity), exp, nbf and iat, plus room, name and grants.
type Claims struct {
	jwt.RegisteredClaims
	Room   string `json:"room"`
	Name   string `json:"name,omitempty"`
	Grants Grants `json:"grants"`
}

// Keys is an API key and its secret.
type Keys struct {
	Key    string
	Secret string
}

// Token describes a token to mint.
type Token struct {
	Room, Identity, Name string
	TTL                  time.Duration
	NotBefore            time.Time // zero: valid at once
	Grants               Grants
}

// Mint signs a token with HS256.
func (k Keys) Mint(t Token, now time.Time) (string, error) {
	if k.Secret == "" || t.Room == "" || t.Identity == "" || t.TTL <= 0 {
		return "", errors.New("auth: minting needs a secret, a room, an identity and a positive TTL")
	}
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: k.Key, Subject: t.Identity,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(t.TTL)),
		},
		Room: t.Room, Name: t.Name, Grants: t.Grants,
	}
	if !t.NotBefore.IsZero() {
		c.NotBefore = jwt.NewNumericDate(t.NotBefore)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(k.Secret))
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	return s, nil
}

// leeway absorbs clock differences between the minting service and us.
const leeway = 5 * time.Second

// Check verifies a token for room at time now and returns its claims. Only
// HS256 is accepted, an expiry is required, and the issuer must be the API
// key.
func (k Keys) Check(token, room string, now time.Time) (*Claims, error) {
	c, err := k.parse(token, now)
	if err != nil {
		return nil, err
	}
	// An admin token (only the admin grant) grants nothing in a room.
	if g := c.Grants; !g.Publish && !g.Subscribe && !g.PublishData {
		return nil, ErrNoGrants
	}
	if c.Room != room {
		return nil, ErrWrongRoom
	}
	return c, nil
}

// AllRooms is the room claim of an admin token valid for every room.
const AllRooms = "*"

// CheckAdmin verifies an admin API token at time now, as Check does, and
// requires the admin grant (ErrNotAdmin) and a room claim of AllRooms or
// room; room "" is a request about the whole server, which needs
// AllRooms (ErrWrongRoom).
func (k Keys) CheckAdmin(token, room string, now time.Time) (*Claims, error) {
	c, err := k.parse(token, now)
	if err != nil {
		return nil, err
	}
	if !c.Grants.Admin {
		return nil, ErrNotAdmin
	}
	if c.Room != AllRooms && (room == "" || c.Room != room) {
		return nil, ErrWrongRoom
	}
	return c, nil
}

// parse checks a token's signature, issuer, times and identity.
func (k Keys) parse(token string, now time.Time) (*Claims, error) {
	if token == "" {
		return nil, ErrMissing
	}
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return []byte(k.Secret), nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithExpirationRequired(),
		jwt.WithIssuer(k.Key), jwt.WithIssuedAt(), jwt.WithLeeway(leeway), jwt.WithTimeFunc(func() time.Time { return now }))
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return nil, ErrNotYetValid
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable),
		errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return nil, ErrSignature
	default:
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if c.Subject == "" {
		return nil, fmt.Errorf("%w: no identity (sub)", ErrMalformed)
	}
	return &c, nil
}
