package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer is the iss claim of every token; tokens with another issuer are
// refused.
const Issuer = "maxine"

// maxTokenLen bounds the work Verify does on attacker-supplied input. Real
// tokens are about 250 bytes.
const maxTokenLen = 4096

// Claims is what a verified token says about its bearer.
type Claims struct {
	User      string
	Role      Role
	ExpiresAt time.Time
}

// tokenClaims is the JWT payload. userName, role and credentialVersion
// (with iat and exp) are the old server's claims, which old tooling reads;
// sub and cv name the same user and version for instances of the previous
// release during a rolling upgrade. Verify takes either name of each and
// refuses a token whose two names disagree. The versions are pointers so
// that a missing claim is told apart from version 0 and refused.
type tokenClaims struct {
	jwt.RegisteredClaims
	UserName          string  `json:"userName,omitempty"`
	Role              string  `json:"role"`
	CredentialVersion *uint64 `json:"credentialVersion,omitempty"`
	CV                *uint64 `json:"cv,omitempty"`
}

// user is the token's user: userName, or sub in tokens without it; ""
// when neither is set or they disagree.
func (tc *tokenClaims) user() string {
	switch {
	case tc.UserName == "":
		return tc.Subject
	case tc.Subject == "" || tc.Subject == tc.UserName:
		return tc.UserName
	}
	return ""
}

// version is the token's credential version: credentialVersion, or cv in
// tokens without it; ok is false when neither is set or they disagree.
func (tc *tokenClaims) version() (uint64, bool) {
	switch {
	case tc.CredentialVersion == nil && tc.CV == nil:
		return 0, false
	case tc.CredentialVersion == nil:
		return *tc.CV, true
	case tc.CV == nil || *tc.CV == *tc.CredentialVersion:
		return *tc.CredentialVersion, true
	}
	return 0, false
}

// signingKeys holds the current secret, which signs, and all secrets that
// verify, indexed by kid.
type signingKeys struct {
	kid    string
	secret []byte
	byKid  map[string][]byte
	parser *jwt.Parser
}

// kidOf names a secret without revealing it: the first 8 bytes of its
// SHA-256, in hex. It only selects a key; the HMAC still decides.
func kidOf(secret []byte) string {
	sum := sha256.Sum256(secret)
	return hex.EncodeToString(sum[:8])
}

// newSigningKeys sets up signing with secret (random when empty) and
// verification with secret and every non-empty previous secret.
func newSigningKeys(secret []byte, previous [][]byte, now func() time.Time) signingKeys {
	if len(secret) == 0 {
		secret = make([]byte, 32)
		// crypto/rand.Read never returns an error (it crashes the program
		// when the OS has no randomness), so there is nothing to handle.
		_, _ = rand.Read(secret)
	}
	k := signingKeys{
		kid:    kidOf(secret),
		secret: append([]byte(nil), secret...),
		byKid:  make(map[string][]byte, 1+len(previous)),
		// WithValidMethods is what refuses "none" and every algorithm but
		// HS256: without it a token could pick its own verification
		// algorithm (the classic JWT algorithm-confusion attack). The
		// parser is safe for concurrent use once built.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithIssuer(Issuer),
			jwt.WithExpirationRequired(),
			jwt.WithTimeFunc(now),
		),
	}
	k.byKid[k.kid] = k.secret
	for _, p := range previous {
		if len(p) == 0 {
			continue
		}
		k.byKid[kidOf(p)] = append([]byte(nil), p...)
	}
	return k
}

// sign issues a token for user with the given role and credential version.
func (k *signingKeys) sign(user string, role Role, cv uint64, now time.Time, ttl time.Duration) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   user,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		UserName:          user,
		Role:              role.String(),
		CredentialVersion: &cv,
		CV:                &cv,
	})
	t.Header["kid"] = k.kid
	return t.SignedString(k.secret)
}

// keyFunc picks the verification secret by kid. A token without a kid, or
// with one we do not know, is refused rather than tried against every
// secret.
func (k *signingKeys) keyFunc(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	secret, ok := k.byKid[kid]
	if !ok {
		return nil, errors.New("unknown kid")
	}
	return secret, nil
}

// Verify checks a token and returns what it says about its bearer. It
// returns ErrTokenExpired for a genuine but expired token and ErrTokenInvalid
// for everything else: malformed input, a bad signature, an unknown kid, any
// algorithm but HS256 (including "none"), a wrong issuer, missing claims, a
// credential version revoked by a password change, or a user or role that
// is no longer configured. Expiry is only reported once the signature has
// been checked, so ErrTokenExpired never vouches for a forged token.
func (a *Authority) Verify(token string) (Claims, error) {
	if len(token) == 0 || len(token) > maxTokenLen {
		return Claims{}, ErrTokenInvalid
	}
	var tc tokenClaims
	if _, err := a.keys.parser.ParseWithClaims(token, &tc, a.keys.keyFunc); err != nil {
		// The parser verifies the signature before it validates claims, so
		// ErrTokenExpired here means a genuine token.
		if errors.Is(err, jwt.ErrTokenExpired) {
			return Claims{}, ErrTokenExpired
		}
		return Claims{}, ErrTokenInvalid
	}
	role, ok := parseRole(tc.Role)
	user := tc.user()
	version, hasVersion := tc.version()
	if !ok || user == "" || !hasVersion || tc.ExpiresAt == nil {
		return Claims{}, ErrTokenInvalid
	}
	// The token is genuine; now check it still describes a current account.
	u, ok := a.users[user]
	if !ok || u.role != role {
		return Claims{}, ErrTokenInvalid
	}
	var cv uint64
	if u.hash == nil { // the file-backed admin
		cv = a.admin.Load().tokenVersion()
	}
	if version != cv {
		return Claims{}, ErrTokenInvalid
	}
	return Claims{User: u.name, Role: role, ExpiresAt: tc.ExpiresAt.Time}, nil
}
