package auth

import (
	"crypto/sha256"
	"crypto/subtle"
)

// BearerToken extracts the token from an Authorization header value of the
// form "Bearer <token>" (RFC 6750 section 2.1). The scheme is matched
// case-insensitively (RFC 9110 section 11.1); surrounding spaces and tabs
// are ignored. It reports false for any other scheme, an empty token, or a
// token containing whitespace. The result aliases header; it does not
// allocate.
func BearerToken(header []byte) ([]byte, bool) {
	h := trimOWS(header)
	const scheme = "bearer"
	if len(h) <= len(scheme) || (h[len(scheme)] != ' ' && h[len(scheme)] != '\t') {
		return nil, false
	}
	for i := range len(scheme) {
		if h[i]|0x20 != scheme[i] { // ASCII lower-casing; scheme is all letters
			return nil, false
		}
	}
	tok := trimOWS(h[len(scheme)+1:])
	if len(tok) == 0 {
		return nil, false
	}
	for _, c := range tok {
		if c == ' ' || c == '\t' {
			return nil, false
		}
	}
	return tok, true
}

// trimOWS trims RFC 9110 optional whitespace (spaces and tabs).
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// ConstantTimeEqual reports whether a and b are equal, in time that depends
// on neither their contents nor, beyond hashing, their lengths. Use it for
// secrets such as the registration token: a plain == returns at the first
// differing byte, which lets a remote client guess a secret byte by byte.
// Comparing SHA-256 digests also hides the secret's length, which
// subtle.ConstantTimeCompare alone would reveal.
func ConstantTimeEqual(a, b string) bool {
	da := sha256.Sum256([]byte(a))
	db := sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(da[:], db[:]) == 1
}
