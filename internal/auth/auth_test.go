package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestCheck(t *testing.T) {
	keys := Keys{Key: "key1", Secret: strings.Repeat("s", 32)}
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	valid := Token{Room: "r", Identity: "alice", Name: "Alice", TTL: time.Hour, Grants: Grants{Subscribe: true}}
	mint := func(k Keys, tk Token, at time.Time) string {
		s, err := k.Mint(tk, at)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	with := func(f func(*Token)) Token { tk := valid; f(&tk); return tk }
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, Claims{Room: "r", Grants: All,
		RegisteredClaims: jwt.RegisteredClaims{Issuer: "key1", Subject: "x", ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"valid", mint(keys, valid, now), nil},
		{"missing", "", ErrMissing},
		{"garbage", "not-a-token", ErrMalformed},
		{"expired", mint(keys, valid, now.Add(-2*time.Hour)), ErrExpired},
		{"not yet valid", mint(keys, with(func(t *Token) { t.NotBefore = now.Add(time.Minute) }), now), ErrNotYetValid},
		{"issued in the future", mint(keys, valid, now.Add(time.Minute)), ErrNotYetValid},
		{"wrong secret", mint(Keys{Key: "key1", Secret: strings.Repeat("x", 32)}, valid, now), ErrSignature},
		{"wrong key", mint(Keys{Key: "key2", Secret: keys.Secret}, valid, now), ErrSignature},
		{"alg none", none, ErrSignature},
		{"other room", mint(keys, with(func(t *Token) { t.Room = "elsewhere" }), now), ErrWrongRoom},
		{"no grants", mint(keys, with(func(t *Token) { t.Grants = Grants{} }), now), ErrNoGrants},
	}
	for _, tt := range tests {
		c, err := keys.Check(tt.token, "r", now)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.want)
		}
		if tt.want == nil && (c.Subject != "alice" || c.Name != "Alice" || c.Grants != valid.Grants) {
			t.Errorf("%s: claims %+v", tt.name, c)
		}
	}
	// Within the leeway, clocks may disagree.
	if _, err := keys.Check(mint(keys, valid, now.Add(3*time.Second)), "r", now); err != nil {
		t.Errorf("token issued 3 s ahead: %v", err)
	}
	if _, err := keys.Mint(Token{Room: "r", Identity: "a"}, now); err == nil {
		t.Errorf("minted a token without a TTL")
	}
}
