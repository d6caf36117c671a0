package account

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token types carried in the token_type claim, as simplejwt names them, so an
// access token can never be used as a refresh token or the other way round.
const (
	tokenAccess  = "access"
	tokenRefresh = "refresh"
)

// ErrInvalidToken covers every way a presented token can be unusable:
// malformed, badly signed, expired, of the wrong type, revoked or reused.
var ErrInvalidToken = errors.New("account: invalid token")

type tokenClaims struct {
	jwt.RegisteredClaims
	TokenType string `json:"token_type"`
	UserID    int64  `json:"user_id"`
	// Version is the user's session version when the token was issued; a
	// password reset bumps it so that earlier tokens stop working at once.
	Version int64 `json:"sv"`
}

// tokenSigner issues and checks HS256 JWTs.
type tokenSigner struct {
	key []byte
}

func (s tokenSigner) sign(c tokenClaims) (string, error) {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("account: sign token: %w", err)
	}
	return tok, nil
}

// parse verifies signature (HS256 only: alg none and others are refused),
// expiry and type. now is injected so tests can move time.
func (s tokenSigner) parse(raw, wantType string, now time.Time) (tokenClaims, error) {
	var c tokenClaims
	_, err := jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return s.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	if err != nil || c.TokenType != wantType || c.UserID <= 0 || c.ID == "" {
		return tokenClaims{}, ErrInvalidToken
	}
	return c, nil
}

func newClaims(typ string, userID, version int64, now time.Time, ttl time.Duration) tokenClaims {
	return tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   strconv.FormatInt(userID, 10),
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			ID:        randomToken(16),
		},
		TokenType: typ,
		UserID:    userID,
		Version:   version,
	}
}

// randomToken returns n random bytes as unpadded URL-safe base64.
func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("account: crypto/rand failed: " + err.Error()) // the OS RNG does not fail on supported systems
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashToken is what is stored for a token: finding a row by the hash of
// what the client presents means a database read leaks no usable token and
// lookup timing reveals nothing about the token's bytes.
func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// EncodeUID encodes a user id the way Django's urlsafe_base64_encode does
// (the decimal id, base64url without padding): id 1 is "MQ".
func EncodeUID(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(id, 10)))
}

// DecodeUID reverses EncodeUID, accepting padded input too.
func DecodeUID(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 32 {
		return 0, false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return 0, false
	}
	id, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != string(b) {
		return 0, false
	}
	return id, true
}

func randomUint32() uint32 {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("account: crypto/rand failed: " + err.Error())
	}
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
