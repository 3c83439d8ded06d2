package auth

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testOptions returns Options with a fresh data dir, cheap bcrypt and a
// fixed secret, plus operator and viewer accounts.
func testOptions(t testing.TB) Options {
	t.Helper()
	return Options{
		DataDir:          t.TempDir(),
		OperatorUser:     "ops",
		OperatorPassword: "ops-pass",
		ViewerUser:       "view",
		ViewerPassword:   "view-pass",
		Secret:           []byte("test-secret-0123456789abcdef0123"),
		BcryptCost:       bcrypt.MinCost,
	}
}

func mustNew(t testing.TB, opts Options) *Authority {
	t.Helper()
	a, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

func mustSignIn(t *testing.T, a *Authority, user, password string) string {
	t.Helper()
	tok, _, err := a.SignIn(user, password)
	if err != nil {
		t.Fatalf("SignIn(%q): %v", user, err)
	}
	return tok
}

func TestRole(t *testing.T) {
	for _, tc := range []struct {
		r    Role
		name string
	}{{RoleNone, "none"}, {Viewer, "viewer"}, {Operator, "operator"}, {Admin, "admin"}} {
		if got := tc.r.String(); got != tc.name {
			t.Errorf("Role(%d).String() = %q, want %q", tc.r, got, tc.name)
		}
	}
	for _, tc := range []struct {
		have, need Role
		want       bool
	}{
		{Admin, Viewer, true}, {Admin, Operator, true}, {Admin, Admin, true},
		{Operator, Viewer, true}, {Operator, Operator, true}, {Operator, Admin, false},
		{Viewer, Viewer, true}, {Viewer, Operator, false}, {Viewer, Admin, false},
		{RoleNone, Viewer, false},
	} {
		if got := tc.have.Allows(tc.need); got != tc.want {
			t.Errorf("%v.Allows(%v) = %v, want %v", tc.have, tc.need, got, tc.want)
		}
	}
}

func TestSignIn(t *testing.T) {
	fileAdmin := mustNew(t, testOptions(t))
	envOpts := testOptions(t)
	envOpts.AdminUser, envOpts.AdminPassword = "root", "a-very-long-env-password-"+strings.Repeat("x", 100)
	envAdmin := mustNew(t, envOpts)

	for _, tc := range []struct {
		name           string
		a              *Authority
		user, password string
		wantRole       Role
		wantErr        error
	}{
		{"file admin default password", fileAdmin, "admin", "admin", Admin, nil},
		{"operator", fileAdmin, "ops", "ops-pass", Operator, nil},
		{"viewer", fileAdmin, "view", "view-pass", Viewer, nil},
		{"env admin, password over 72 bytes", envAdmin, "root", envOpts.AdminPassword, Admin, nil},
		{"env admin replaces file admin", envAdmin, "admin", "admin", RoleNone, ErrBadCredentials},
		{"env admin, 72-byte prefix only", envAdmin, "root", envOpts.AdminPassword[:72], RoleNone, ErrBadCredentials},
		{"wrong admin password", fileAdmin, "admin", "Admin", RoleNone, ErrBadCredentials},
		{"admin password with suffix past 72 bytes", fileAdmin, "admin", "admin" + strings.Repeat("x", 80), RoleNone, ErrBadCredentials},
		{"wrong operator password", fileAdmin, "ops", "view-pass", RoleNone, ErrBadCredentials},
		{"empty password", fileAdmin, "view", "", RoleNone, ErrBadCredentials},
		{"unknown user", fileAdmin, "nobody", "admin", RoleNone, ErrBadCredentials},
		{"empty user", fileAdmin, "", "", RoleNone, ErrBadCredentials},
		{"user name is case-sensitive", fileAdmin, "Admin", "admin", RoleNone, ErrBadCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, role, err := tc.a.SignIn(tc.user, tc.password)
			if err != tc.wantErr {
				t.Fatalf("SignIn err = %v, want %v", err, tc.wantErr)
			}
			if role != tc.wantRole {
				t.Fatalf("role = %v, want %v", role, tc.wantRole)
			}
			if err != nil {
				if tok != "" {
					t.Fatalf("token %q returned with error", tok)
				}
				return
			}
			c, err := tc.a.Verify(tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.User != tc.user || c.Role != tc.wantRole {
				t.Fatalf("claims = %+v, want user %q role %v", c, tc.user, tc.wantRole)
			}
		})
	}
}

func TestTokenLifetime(t *testing.T) {
	clock := newFakeClock()
	opts := testOptions(t)
	opts.Now = clock.Now
	a := mustNew(t, opts)
	tok := mustSignIn(t, a, "view", "view-pass")
	c, err := a.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if want := clock.Now().Add(DefaultTokenTTL); !c.ExpiresAt.Equal(want) {
		t.Fatalf("ExpiresAt = %v, want %v (default TTL)", c.ExpiresAt, want)
	}

	clock.Advance(DefaultTokenTTL - time.Second)
	if _, err := a.Verify(tok); err != nil {
		t.Fatalf("Verify just before expiry: %v", err)
	}
	clock.Advance(2 * time.Second)
	if _, err := a.Verify(tok); err != ErrTokenExpired {
		t.Fatalf("Verify after expiry = %v, want ErrTokenExpired", err)
	}

	// An expired token with a broken signature must not be reported as
	// merely expired.
	parts := strings.Split(tok, ".")
	forged := parts[0] + "." + parts[1] + "." + flipLast(parts[2])
	if _, err := a.Verify(forged); err != ErrTokenInvalid {
		t.Fatalf("Verify(expired, bad signature) = %v, want ErrTokenInvalid", err)
	}

	opts.TokenTTL = time.Minute
	short := mustNew(t, opts)
	tok = mustSignIn(t, short, "view", "view-pass")
	clock.Advance(61 * time.Second)
	if _, err := short.Verify(tok); err != ErrTokenExpired {
		t.Fatalf("Verify after custom TTL = %v, want ErrTokenExpired", err)
	}
}

func TestChangePasswordErrors(t *testing.T) {
	envOpts := testOptions(t)
	envOpts.AdminUser, envOpts.AdminPassword = "root", "root-pass"
	envAdmin := mustNew(t, envOpts)
	fileAdmin := mustNew(t, testOptions(t))

	for _, tc := range []struct {
		name          string
		a             *Authority
		user, old, nw string
		want          error
	}{
		{"env-managed admin", envAdmin, "root", "root-pass", "new-pass", ErrEnvManaged},
		{"wrong old password", fileAdmin, "admin", "nope", "new-pass", ErrBadCredentials},
		{"not the admin", fileAdmin, "ops", "ops-pass", "new-pass", ErrBadCredentials},
		{"empty new password", fileAdmin, "admin", "admin", "", ErrWeakPassword},
		{"new password over 72 bytes", fileAdmin, "admin", "admin", strings.Repeat("x", 73), ErrWeakPassword},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.a.ChangePassword(tc.user, tc.old, tc.nw); err != tc.want {
				t.Fatalf("ChangePassword = %v, want %v", err, tc.want)
			}
		})
	}
	// None of the failures changed anything.
	if !fileAdmin.UsingDefaultAdmin() {
		t.Fatal("failed changes must leave the default password in place")
	}
	mustSignIn(t, fileAdmin, "admin", "admin")
	mustSignIn(t, envAdmin, "root", "root-pass")
	if envAdmin.UsingDefaultAdmin() {
		t.Fatal("an env-managed admin is never the default admin")
	}
}

func TestChangePasswordRevokesAndPersists(t *testing.T) {
	opts := testOptions(t)
	a := mustNew(t, opts)
	if !a.UsingDefaultAdmin() {
		t.Fatal("fresh data dir: want the default admin")
	}
	oldAdmin := mustSignIn(t, a, "admin", "admin")
	viewer := mustSignIn(t, a, "view", "view-pass")

	if err := a.ChangePassword("admin", "admin", "s3cret"); err != nil {
		t.Fatalf("ChangePassword: %v", err)
	}
	if a.UsingDefaultAdmin() {
		t.Fatal("UsingDefaultAdmin after change")
	}
	check := func(a *Authority) {
		t.Helper()
		if _, err := a.Verify(oldAdmin); err != ErrTokenInvalid {
			t.Fatalf("token from before the change: Verify = %v, want ErrTokenInvalid", err)
		}
		if _, err := a.Verify(viewer); err != nil {
			t.Fatalf("other users' tokens must survive an admin password change: %v", err)
		}
		if _, _, err := a.SignIn("admin", "admin"); err != ErrBadCredentials {
			t.Fatalf("old password: SignIn = %v, want ErrBadCredentials", err)
		}
		tok := mustSignIn(t, a, "admin", "s3cret")
		if c, err := a.Verify(tok); err != nil || c.Role != Admin {
			t.Fatalf("new token: %+v, %v", c, err)
		}
	}
	check(a)

	// Restart on the same data dir.
	b := mustNew(t, opts)
	if b.UsingDefaultAdmin() {
		t.Fatal("UsingDefaultAdmin after restart")
	}
	check(b)
	fromA := mustSignIn(t, a, "admin", "s3cret")
	if _, err := b.Verify(fromA); err != nil {
		t.Fatalf("same secret and credential version: %v", err)
	}

	// A second change revokes again and bumps the version once more.
	if err := b.ChangePassword("admin", "s3cret", "admin"); err != nil {
		t.Fatal(err)
	}
	if !b.UsingDefaultAdmin() {
		t.Fatal("changed back to admin/admin: want UsingDefaultAdmin")
	}
	if got := b.admin.Load().credentialVersion; got != 2 {
		t.Fatalf("credential version = %d, want 2", got)
	}

	path := filepath.Join(opts.DataDir, CredentialsFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, want 0600", fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{`"s3cret"`, `"admin"`} {
		if bytes.Contains(data, []byte(secret)) {
			t.Fatalf("credentials file contains a plaintext password: %s", data)
		}
	}
	entries, err := os.ReadDir(opts.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("data dir holds %d entries, want only %s (temp files left behind?)", len(entries), CredentialsFile)
	}
}

func TestChangePasswordConcurrent(t *testing.T) {
	a := mustNew(t, testOptions(t))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			errs <- a.ChangePassword("admin", "admin", "admin")
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := a.admin.Load().credentialVersion; got != 8 {
		t.Fatalf("credential version = %d, want 8", got)
	}
}

func TestNewErrors(t *testing.T) {
	corrupt := func(content string) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, CredentialsFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	for _, tc := range []struct {
		name    string
		mutate  func(o *Options)
		wantSub string
	}{
		{"not JSON", func(o *Options) { o.DataDir = corrupt("{not json") }, CredentialsFile},
		{"truncated", func(o *Options) { o.DataDir = corrupt(`{"passwordHash": "$2a$04$`) }, CredentialsFile},
		{"missing hash", func(o *Options) { o.DataDir = corrupt(`{"credentialVersion": 3}`) }, CredentialsFile},
		{"not a bcrypt hash", func(o *Options) { o.DataDir = corrupt(`{"passwordHash": "admin"}`) }, CredentialsFile},
		{"epoch not hex", func(o *Options) {
			o.DataDir = corrupt(`{"passwordHash": "$2a$04$abcdefghijklmnopqrstuu5Oe3Z1m6ZmvP1mHzgl0RJQm0q1sx1i.", "credentialEpoch": "zz"}`)
		}, "credentialEpoch"},
		{"epoch too short", func(o *Options) {
			o.DataDir = corrupt(`{"passwordHash": "$2a$04$abcdefghijklmnopqrstuu5Oe3Z1m6ZmvP1mHzgl0RJQm0q1sx1i.", "credentialEpoch": "00ff"}`)
		}, "credentialEpoch"},
		{"epoch as number", func(o *Options) {
			o.DataDir = corrupt(`{"passwordHash": "$2a$04$abcdefghijklmnopqrstuu5Oe3Z1m6ZmvP1mHzgl0RJQm0q1sx1i.", "credentialEpoch": 7}`)
		}, CredentialsFile},
		{"negative version", func(o *Options) {
			o.DataDir = corrupt(`{"passwordHash": "$2a$04$abcdefghijklmnopqrstuu5Oe3Z1m6ZmvP1mHzgl0RJQm0q1sx1i.", "credentialVersion": -1}`)
		}, CredentialsFile},
		{"no data dir", func(o *Options) { o.DataDir = "" }, "data dir"},
		{"admin password without user", func(o *Options) { o.AdminPassword = "x" }, "MAXINE_ADMIN_USERNAME"},
		{"operator user without password", func(o *Options) { o.OperatorPassword = "" }, "MAXINE_OPERATOR_PASSWORD"},
		{"viewer password without user", func(o *Options) { o.ViewerUser = "" }, "MAXINE_VIEWER_USERNAME"},
		{"duplicate user name", func(o *Options) { o.ViewerUser = "ops" }, `"ops"`},
		{"viewer named like the file admin", func(o *Options) { o.ViewerUser = "admin" }, `"admin"`},
		{"bcrypt cost too high", func(o *Options) { o.BcryptCost = 99 }, "cost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(t)
			tc.mutate(&opts)
			_, err := New(opts)
			if err == nil {
				t.Fatal("New succeeded, want error")
			}
			if !strings.Contains(err.Error(), tc.wantSub) {
				t.Fatalf("error %q does not mention %q", err, tc.wantSub)
			}
		})
	}
}

func TestNewEnvAdminIgnoresDataDir(t *testing.T) {
	opts := testOptions(t)
	opts.DataDir = ""
	opts.AdminUser, opts.AdminPassword = "root", "root-pass"
	a := mustNew(t, opts)
	if !a.AdminEnvManaged() {
		t.Fatal("want env-managed admin")
	}

	// A corrupt file is irrelevant when the admin is env-managed.
	opts.DataDir = t.TempDir()
	if err := os.WriteFile(filepath.Join(opts.DataDir, CredentialsFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustNew(t, opts)
}

func TestNewCreatesDataDir(t *testing.T) {
	opts := testOptions(t)
	opts.DataDir = filepath.Join(opts.DataDir, "nested", "data")
	a := mustNew(t, opts)
	if !a.UsingDefaultAdmin() {
		t.Fatal("want default admin")
	}
	if _, err := os.Stat(filepath.Join(opts.DataDir, CredentialsFile)); err != nil {
		t.Fatal(err)
	}
}

func TestNewRenamedFileAdmin(t *testing.T) {
	opts := testOptions(t)
	opts.AdminUser = "boss"
	a := mustNew(t, opts)
	if a.AdminEnvManaged() {
		t.Fatal("user name alone must not make the admin env-managed")
	}
	if _, role, err := a.SignIn("boss", "admin"); err != nil || role != Admin {
		t.Fatalf("SignIn(boss) = %v, %v", role, err)
	}
	if err := a.ChangePassword("boss", "admin", "pw"); err != nil {
		t.Fatal(err)
	}
}

func TestErrorsAreDistinct(t *testing.T) {
	all := []error{ErrBadCredentials, ErrEnvManaged, ErrWeakPassword, ErrTokenExpired, ErrTokenInvalid}
	for i, a := range all {
		for j, b := range all {
			if (i == j) != errors.Is(a, b) {
				t.Fatalf("errors.Is(%v, %v) = %v", a, b, i != j)
			}
		}
	}
}

// TestDeletedCredentialsFileRevokesTokens: deleting the credentials file
// resets the admin to admin/admin, and must not bring back tokens issued
// under the old file, even when the new file's version counter climbs back
// to the value those tokens carry.
func TestDeletedCredentialsFileRevokesTokens(t *testing.T) {
	opts := testOptions(t)
	path := filepath.Join(opts.DataDir, CredentialsFile)
	a := mustNew(t, opts)
	atV0 := mustSignIn(t, a, "admin", "admin")
	if err := a.ChangePassword("admin", "admin", "s3cret"); err != nil {
		t.Fatal(err)
	}
	atV1 := mustSignIn(t, a, "admin", "s3cret")
	viewer := mustSignIn(t, a, "view", "view-pass")

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	b := mustNew(t, opts) // same data dir, same secret: a restart
	if !b.UsingDefaultAdmin() {
		t.Fatal("deleted file: want the default admin back")
	}
	if _, err := b.Verify(atV0); err != ErrTokenInvalid {
		t.Fatalf("token from the deleted file's version 0: Verify = %v, want ErrTokenInvalid", err)
	}
	if _, err := b.Verify(viewer); err != nil {
		t.Fatalf("env accounts do not depend on the file: %v", err)
	}
	fresh := mustSignIn(t, b, "admin", "admin")
	if _, err := b.Verify(fresh); err != nil {
		t.Fatalf("token from the new file: %v", err)
	}

	// One change on the new file takes its counter to 1, where atV1 was.
	if err := b.ChangePassword("admin", "admin", "s3cret"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(atV1); err != ErrTokenInvalid {
		t.Fatalf("token from the deleted file's version 1: Verify = %v, want ErrTokenInvalid", err)
	}
	// And across another restart on the new file.
	c := mustNew(t, opts)
	if _, err := c.Verify(atV1); err != ErrTokenInvalid {
		t.Fatalf("after restart, token from the deleted file's version 1: Verify = %v, want ErrTokenInvalid", err)
	}
	if _, err := c.Verify(mustSignIn(t, b, "admin", "s3cret")); err != nil {
		t.Fatalf("token from the new file after restart: %v", err)
	}
}

// TestCredentialsFileWithoutEpoch: a file written before credential epochs
// existed keeps working, and so do the tokens issued under it (their cv is
// the bare version); deleting it still revokes them.
func TestCredentialsFileWithoutEpoch(t *testing.T) {
	clock := newFakeClock()
	opts := testOptions(t)
	opts.Now = clock.Now
	hash, err := bcrypt.GenerateFromPassword([]byte("old-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(opts.DataDir, CredentialsFile)
	legacy := `{"passwordHash": "` + string(hash) + `", "credentialVersion": 3, "updatedAt": "2024-01-01T00:00:00Z"}`
	if err := os.WriteFile(path, []byte(legacy), 0o600); err != nil {
		t.Fatal(err)
	}
	a := mustNew(t, opts)
	// A token as the previous release issued it: cv is the version, 3.
	now := clock.Now().Unix()
	old := forge(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": kidOf(opts.Secret)},
		map[string]any{"iss": Issuer, "sub": "admin", "role": "admin", "cv": 3, "iat": now, "exp": now + 600}, opts.Secret)
	if _, err := a.Verify(old); err != nil {
		t.Fatalf("token issued under a file without an epoch: %v", err)
	}
	if _, err := a.Verify(mustSignIn(t, a, "admin", "old-pass")); err != nil {
		t.Fatal(err)
	}
	// Changing the password does not add an epoch behind the user's back;
	// the version still moves on and revokes the old token.
	if err := a.ChangePassword("admin", "old-pass", "new-pass"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("credentialEpoch")) || !bytes.Contains(data, []byte(`"credentialVersion": 4`)) {
		t.Fatalf("rewritten legacy file: %s", data)
	}
	if _, err := a.Verify(old); err != ErrTokenInvalid {
		t.Fatalf("token from before the change: Verify = %v, want ErrTokenInvalid", err)
	}
	at4 := mustSignIn(t, a, "admin", "new-pass")

	// Deleting it gives the new file an epoch, so no version of the old
	// file comes back.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	b := mustNew(t, opts)
	data, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"credentialEpoch": "`)) {
		t.Fatalf("new file has no epoch: %s", data)
	}
	for range 4 {
		if _, err := b.Verify(at4); err != ErrTokenInvalid {
			t.Fatalf("token from the deleted legacy file: Verify = %v, want ErrTokenInvalid", err)
		}
		if err := b.ChangePassword("admin", "admin", "admin"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Verify(at4); err != ErrTokenInvalid {
		t.Fatalf("token from the deleted legacy file at the same version: Verify = %v, want ErrTokenInvalid", err)
	}
}
