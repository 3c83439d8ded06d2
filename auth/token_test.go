package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"strings"
	"testing"
	"time"
)

var b64 = base64.RawURLEncoding

// forge builds a token by hand, so tests control every byte the parser
// sees. alg picks the HMAC ("HS256", "HS384", "HS512"); any other alg
// (e.g. "none") gets an empty signature.
func forge(t *testing.T, header, payload map[string]any, secret []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	signing := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	var newHash func() hash.Hash
	switch header["alg"] {
	case "HS256":
		newHash = sha256.New
	case "HS384":
		newHash = sha512.New384
	case "HS512":
		newHash = sha512.New
	default:
		return signing + "."
	}
	mac := hmac.New(newHash, secret)
	mac.Write([]byte(signing))
	return signing + "." + b64.EncodeToString(mac.Sum(nil))
}

// flipLast changes the last character of a base64url string.
func flipLast(s string) string {
	if s == "" {
		return "A"
	}
	c := byte('A')
	if s[len(s)-1] == 'A' {
		c = 'B'
	}
	return s[:len(s)-1] + string(c)
}

func TestVerifySecretRotation(t *testing.T) {
	oldSecret := []byte("old-secret-old-secret-old-secret")
	newSecret := []byte("new-secret-new-secret-new-secret")
	other := []byte("unrelated-secret-unrelated-secre")

	opts := testOptions(t)
	opts.Secret = oldSecret
	before := mustNew(t, opts)
	oldTok := mustSignIn(t, before, "view", "view-pass")

	opts.Secret, opts.PreviousSecrets = newSecret, [][]byte{{}, oldSecret}
	after := mustNew(t, opts)
	if _, err := after.Verify(oldTok); err != nil {
		t.Fatalf("token signed with a previous secret: %v", err)
	}
	newTok := mustSignIn(t, after, "view", "view-pass")
	if kid := tokenHeader(t, newTok)["kid"]; kid != kidOf(newSecret) {
		t.Fatalf("new token kid = %v, want the current secret's %s", kid, kidOf(newSecret))
	}
	if _, err := before.Verify(newTok); err != ErrTokenInvalid {
		t.Fatalf("old instance verifying a token from the new secret = %v, want ErrTokenInvalid", err)
	}

	opts.Secret, opts.PreviousSecrets = other, nil
	unrelated := mustNew(t, opts)
	if _, err := unrelated.Verify(oldTok); err != ErrTokenInvalid {
		t.Fatalf("token from an unrelated secret = %v, want ErrTokenInvalid", err)
	}

	// Random per-process secrets: two instances do not accept each other's
	// tokens.
	opts.Secret = nil
	r1, r2 := mustNew(t, opts), mustNew(t, opts)
	if _, err := r2.Verify(mustSignIn(t, r1, "view", "view-pass")); err != ErrTokenInvalid {
		t.Fatalf("random secrets: Verify = %v, want ErrTokenInvalid", err)
	}
}

func tokenHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	raw, err := b64.DecodeString(strings.SplitN(tok, ".", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestVerifyRejects(t *testing.T) {
	clock := newFakeClock()
	opts := testOptions(t)
	opts.Now = clock.Now
	a := mustNew(t, opts)
	secret := opts.Secret
	kid := kidOf(secret)
	now := clock.Now().Unix()

	hdr := func(alg string) map[string]any { return map[string]any{"alg": alg, "typ": "JWT", "kid": kid} }
	// claims returns a valid payload for the viewer, with edits applied.
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"iss": Issuer, "sub": "view", "role": "viewer", "cv": 0, "iat": now, "exp": now + 600}
		if edit != nil {
			edit(c)
		}
		return c
	}

	// The forging helper itself must produce tokens Verify accepts, or the
	// rejections below prove nothing.
	if c, err := a.Verify(forge(t, hdr("HS256"), claims(nil), secret)); err != nil || c.User != "view" {
		t.Fatalf("hand-built valid token: %+v, %v", c, err)
	}

	// The old claim names alone verify too (tokens naming the user only
	// as userName and the version only as credentialVersion).
	oldNames := claims(func(c map[string]any) {
		delete(c, "sub")
		delete(c, "cv")
		c["userName"], c["credentialVersion"] = "view", 0
	})
	if c, err := a.Verify(forge(t, hdr("HS256"), oldNames, secret)); err != nil || c.User != "view" || c.Role != Viewer {
		t.Fatalf("token with userName/credentialVersion only: %+v, %v", c, err)
	}

	admin := mustSignIn(t, a, "admin", "admin")
	viewer := mustSignIn(t, a, "view", "view-pass")
	vp := strings.Split(viewer, ".")

	upgraded := func() string {
		raw, err := b64.DecodeString(vp[1])
		if err != nil {
			t.Fatal(err)
		}
		var p map[string]any
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		p["role"] = "admin"
		out, _ := json.Marshal(p)
		return vp[0] + "." + b64.EncodeToString(out) + "." + vp[2]
	}()

	for _, tc := range []struct {
		name  string
		token string
	}{
		{"empty", ""},
		{"garbage", "garbage"},
		{"two dots", ".."},
		{"three dots", "a.b.c.d"},
		{"not base64", "!!!.###.$$$"},
		{"header not JSON", b64.EncodeToString([]byte("nope")) + "." + vp[1] + "." + vp[2]},
		{"signature stripped", vp[0] + "." + vp[1] + "."},
		{"signature flipped", vp[0] + "." + vp[1] + "." + flipLast(vp[2])},
		{"payload tampered: role upgraded", upgraded},
		{"signature swapped from another token", vp[0] + "." + vp[1] + "." + strings.Split(admin, ".")[2]},
		{"trailing space", viewer + " "},
		{"too long", viewer + strings.Repeat("A", maxTokenLen)},
		{"alg none", forge(t, map[string]any{"alg": "none", "typ": "JWT"}, claims(nil), nil)},
		{"alg none with kid", forge(t, hdr("none"), claims(nil), nil)},
		{"alg None", forge(t, hdr("None"), claims(nil), nil)},
		{"HS384 with the right secret", forge(t, hdr("HS384"), claims(nil), secret)},
		{"HS512 with the right secret", forge(t, hdr("HS512"), claims(nil), secret)},
		{"RS256 header", forge(t, hdr("RS256"), claims(nil), secret)},
		{"missing kid", forge(t, map[string]any{"alg": "HS256", "typ": "JWT"}, claims(nil), secret)},
		{"unknown kid", forge(t, map[string]any{"alg": "HS256", "kid": "0011223344556677"}, claims(nil), secret)},
		{"kid not a string", forge(t, map[string]any{"alg": "HS256", "kid": 7}, claims(nil), secret)},
		{"wrong secret, right kid", forge(t, hdr("HS256"), claims(nil), []byte("another-secret"))},
		{"wrong issuer", forge(t, hdr("HS256"), claims(func(c map[string]any) { c["iss"] = "evil" }), secret)},
		{"missing issuer", forge(t, hdr("HS256"), claims(func(c map[string]any) { delete(c, "iss") }), secret)},
		{"missing sub", forge(t, hdr("HS256"), claims(func(c map[string]any) { delete(c, "sub") }), secret)},
		{"missing role", forge(t, hdr("HS256"), claims(func(c map[string]any) { delete(c, "role") }), secret)},
		{"missing cv", forge(t, hdr("HS256"), claims(func(c map[string]any) { delete(c, "cv") }), secret)},
		{"missing exp", forge(t, hdr("HS256"), claims(func(c map[string]any) { delete(c, "exp") }), secret)},
		{"role as number", forge(t, hdr("HS256"), claims(func(c map[string]any) { c["role"] = 3 }), secret)},
		{"role none", forge(t, hdr("HS256"), claims(func(c map[string]any) { c["role"] = "none" }), secret)},
		{"cv negative", forge(t, hdr("HS256"), claims(func(c map[string]any) { c["cv"] = -1 }), secret)},
		{"cv as string", forge(t, hdr("HS256"), claims(func(c map[string]any) { c["cv"] = "0" }), secret)},
		{"unknown user", forge(t, hdr("HS256"), claims(func(c map[string]any) { c["sub"] = "ghost" }), secret)},
		{"role above the user's", forge(t, hdr("HS256"), claims(func(c map[string]any) { c["role"] = "admin" }), secret)},
		{"role below the user's", forge(t, hdr("HS256"), claims(func(c map[string]any) {
			c["sub"], c["role"] = "admin", "viewer"
		}), secret)},
		{"stale credential version", forge(t, hdr("HS256"), claims(func(c map[string]any) {
			c["sub"], c["role"], c["cv"] = "admin", "admin", a.admin.Load().tokenVersion()-1
		}), secret)},
		{"credential version without the file's epoch", forge(t, hdr("HS256"), claims(func(c map[string]any) {
			c["sub"], c["role"], c["cv"] = "admin", "admin", 0
		}), secret)},
		{"env user with nonzero cv", forge(t, hdr("HS256"), claims(func(c map[string]any) { c["cv"] = 1 }), secret)},
		{"not yet valid", forge(t, hdr("HS256"), claims(func(c map[string]any) { c["nbf"] = now + 60 }), secret)},
		{"userName disagrees with sub", forge(t, hdr("HS256"), claims(func(c map[string]any) { c["userName"] = "admin" }), secret)},
		{"credentialVersion disagrees with cv", forge(t, hdr("HS256"), claims(func(c map[string]any) { c["credentialVersion"] = 1 }), secret)},
		{"userName not a string", forge(t, hdr("HS256"), claims(func(c map[string]any) { c["userName"] = 7 }), secret)},
		{"userName empty without sub", forge(t, hdr("HS256"), claims(func(c map[string]any) { delete(c, "sub"); c["userName"] = "" }), secret)},
		{"credentialVersion negative", forge(t, hdr("HS256"), claims(func(c map[string]any) { delete(c, "cv"); c["credentialVersion"] = -1 }), secret)},
		{"unknown userName", forge(t, hdr("HS256"), claims(func(c map[string]any) { delete(c, "sub"); c["userName"] = "ghost" }), secret)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := a.Verify(tc.token)
			if err != ErrTokenInvalid {
				t.Fatalf("Verify = %+v, %v; want ErrTokenInvalid", c, err)
			}
			if c != (Claims{}) {
				t.Fatalf("claims returned with error: %+v", c)
			}
		})
	}

	// A genuine expired token is reported as expired, forged or not-HS256
	// expired ones as invalid.
	expired := claims(func(c map[string]any) { c["exp"] = now - 1 })
	if _, err := a.Verify(forge(t, hdr("HS256"), expired, secret)); err != ErrTokenExpired {
		t.Fatalf("expired: Verify = %v, want ErrTokenExpired", err)
	}
	if _, err := a.Verify(forge(t, hdr("none"), expired, nil)); err != ErrTokenInvalid {
		t.Fatalf("expired alg none: Verify = %v, want ErrTokenInvalid", err)
	}
	if _, err := a.Verify(forge(t, hdr("HS256"), expired, []byte("nope"))); err != ErrTokenInvalid {
		t.Fatalf("expired, wrong secret: Verify = %v, want ErrTokenInvalid", err)
	}
}

func TestVerifyClaims(t *testing.T) {
	clock := newFakeClock()
	opts := testOptions(t)
	opts.Now = clock.Now
	opts.TokenTTL = 10 * time.Minute
	a := mustNew(t, opts)
	tok, role, err := a.SignIn("ops", "ops-pass")
	if err != nil || role != Operator {
		t.Fatalf("SignIn: %v %v", role, err)
	}
	raw, err := b64.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	now := float64(clock.Now().Unix())
	// userName, role and credentialVersion are the old server's claims,
	// which old tooling reads; sub and cv are kept for tokens checked by
	// instances of the previous release during a rolling upgrade.
	want := map[string]any{"iss": "maxine", "sub": "ops", "role": "operator", "cv": 0.0, "iat": now, "exp": now + 600,
		"userName": "ops", "credentialVersion": 0.0}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("claim %s = %v, want %v", k, p[k], v)
		}
	}
	h := tokenHeader(t, tok)
	if h["alg"] != "HS256" || h["kid"] != kidOf(opts.Secret) || len(kidOf(opts.Secret)) != 16 {
		t.Errorf("header = %v", h)
	}
}
