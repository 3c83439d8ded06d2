package auth

import (
	"strings"
	"testing"
)

// FuzzVerify feeds arbitrary strings to Verify. It must never panic, must
// return one of its two sentinel errors, and must only accept a token that
// names a configured user with that user's role.
func FuzzVerify(f *testing.F) {
	a := mustNew(f, testOptions(f))
	tok, _, err := a.SignIn("view", "view-pass")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Add(strings.Replace(tok, ".", "..", 1))
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := a.Verify(token)
		switch err {
		case nil:
			want, ok := map[string]Role{"admin": Admin, "ops": Operator, "view": Viewer}[c.User]
			if !ok || c.Role != want {
				t.Fatalf("accepted %q as %+v", token, c)
			}
		case ErrTokenInvalid, ErrTokenExpired:
		default:
			t.Fatalf("Verify(%q) returned unexpected error %v", token, err)
		}
	})
}
