// Package auth authenticates the people who operate Maxine's admin API.
//
// It owns three things:
//
//   - the user table: one admin (either env-managed, or file-backed in
//     <DataDir>/admin-credentials.json as a bcrypt hash) plus optional
//     operator and viewer accounts from the environment;
//   - access tokens: HS256 JWTs carrying a kid (so secrets can be rotated),
//     the user's role and a credential version (so a password change revokes
//     every token issued before it, and so does deleting the credentials
//     file: the version includes a random per-file epoch);
//   - a per-client-IP RateLimiter for sign-in attempts.
//
// Everything is passed in through Options; the package has no global state
// and starts no goroutines.
package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Role is what a user may do. Roles nest: Viewer < Operator < Admin, so a
// higher role is allowed everything a lower one is.
type Role uint8

// The roles, in increasing order of privilege. RoleNone is the zero value and
// is never held by a signed-in user.
const (
	RoleNone Role = iota
	Viewer
	Operator
	Admin
)

// String returns the role's wire name ("viewer", "operator", "admin"); the
// same name is used in the sign-in response and in the token's role claim.
func (r Role) String() string {
	switch r {
	case Viewer:
		return "viewer"
	case Operator:
		return "operator"
	case Admin:
		return "admin"
	default:
		return "none"
	}
}

// Allows reports whether a holder of r may do something that needs role
// need. Roles nest, so this is r >= need.
func (r Role) Allows(need Role) bool { return r >= need }

// parseRole is the inverse of Role.String for the three real roles.
func parseRole(s string) (Role, bool) {
	switch s {
	case "viewer":
		return Viewer, true
	case "operator":
		return Operator, true
	case "admin":
		return Admin, true
	}
	return RoleNone, false
}

// The errors returned by this package. SignIn, ChangePassword and Verify
// return these exact values (not wrapped), so both == and errors.Is work.
var (
	// ErrBadCredentials: unknown user or wrong password. Callers answer 401
	// and must not say which of the two it was.
	ErrBadCredentials = errors.New("auth: bad credentials")
	// ErrEnvManaged: the admin's password comes from the environment and
	// cannot be changed at runtime.
	ErrEnvManaged = errors.New("auth: admin credentials are managed by environment variables")
	// ErrWeakPassword: the new password is not acceptable: empty, or longer
	// than the 72 bytes bcrypt can hash.
	ErrWeakPassword = errors.New("auth: new password is empty or longer than 72 bytes")
	// ErrTokenExpired: the token is genuine (signature checked) but past its
	// exp claim.
	ErrTokenExpired = errors.New("auth: token expired")
	// ErrTokenInvalid: anything else wrong with a token: malformed, bad
	// signature, unknown kid, algorithm other than HS256, missing claims,
	// revoked by a password change, or a user/role that no longer exists.
	ErrTokenInvalid = errors.New("auth: token invalid")
)

// Defaults applied by New for zero Options fields.
const (
	DefaultAdminUser     = "admin"
	DefaultAdminPassword = "admin"
	DefaultTokenTTL      = 30 * time.Minute
)

// bcryptMaxPassword is the most bcrypt hashes; longer inputs are silently
// truncated by CompareHashAndPassword, so they are refused instead.
const bcryptMaxPassword = 72

// Options configures an Authority. Fields mirror the MAXINE_* settings
// (SPEC section 10); cmd/maxine fills them from flags and the environment.
type Options struct {
	// DataDir holds admin-credentials.json (bcrypt hash, credential
	// version and epoch, mode 0600, replaced atomically). Required unless the admin is
	// env-managed.
	DataDir string

	// AdminUser and AdminPassword come from MAXINE_ADMIN_USERNAME and
	// MAXINE_ADMIN_PASSWORD. When both are set the admin is env-managed and
	// its password cannot be changed at runtime. AdminUser alone renames the
	// file-backed admin (default "admin"); AdminPassword alone is an error,
	// because silently ignoring a configured password would be worse.
	AdminUser, AdminPassword string

	// OperatorUser/OperatorPassword and ViewerUser/ViewerPassword are the
	// optional env accounts. Each pair must be both set or both empty.
	OperatorUser, OperatorPassword string
	ViewerUser, ViewerPassword     string

	// Secret signs new tokens (MAXINE_JWT_SECRET). Empty means 32 random
	// bytes per process: tokens then die with the process and are not
	// accepted by other instances.
	Secret []byte

	// PreviousSecrets (MAXINE_JWT_PREVIOUS_SECRETS) still verify tokens, so
	// a secret can be rotated without signing everyone out. They never sign.
	// Empty entries are ignored: an empty HMAC key would accept tokens
	// anyone can forge.
	PreviousSecrets [][]byte

	// TokenTTL is the token lifetime; zero or negative means 30 minutes.
	TokenTTL time.Duration

	// BcryptCost is used for new password hashes; zero means
	// bcrypt.DefaultCost. Tests use bcrypt.MinCost.
	BcryptCost int

	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// user is one account. Env accounts are immutable after New; the
// file-backed admin's hash and credential version live in Authority.admin.
type user struct {
	name string
	role Role
	// hash is bcrypt(hex(sha256(password))) for env accounts: pre-hashing
	// lifts bcrypt's 72-byte limit on env passwords, and hashing at all
	// means every sign-in costs one bcrypt comparison whoever the user is.
	// Nil for the file-backed admin.
	hash []byte
}

// adminState is the file-backed admin's current credentials. It is replaced
// as a whole (never mutated) so readers can hold on to a snapshot.
type adminState struct {
	hash              []byte
	credentialVersion uint64 // counts password changes since the file was created
	epoch             uint64 // random per credentials file; 0 for files older than epochs
	isDefault         bool
}

// tokenVersion is the credential version a token for this state carries
// (its cv claim): the file's epoch plus its change counter, wrapping.
//
// The counter alone is not enough. Deleting the credentials file resets the
// admin to admin/admin and the counter to 0, so with the counter alone every
// unexpired token issued at versions 0, 1, ... of the deleted file would
// verify again as soon as the new file's counter got back there (at once, for
// version 0). A new file gets a new random epoch, so an old token's cv
// matches the new file only if two random 64-bit epochs happen to lie within
// a few password changes of each other. Restoring an old copy of the file
// does bring its tokens back: that is the file being restored, not reset.
func (st *adminState) tokenVersion() uint64 {
	return st.epoch + st.credentialVersion
}

// Authority signs users in, issues and verifies their tokens, and changes
// the admin password. It is safe for concurrent use. Create it with New.
type Authority struct {
	users      map[string]*user // by user name; immutable after New
	adminName  string
	envManaged bool // admin password comes from the environment
	credPath   string
	cost       int
	ttl        time.Duration
	now        func() time.Time
	keys       signingKeys

	// dummyHash is compared against when the user is unknown, so that an
	// unknown name costs the same bcrypt work as a known one.
	dummyHash []byte

	// admin holds *adminState for the file-backed admin (nil when
	// env-managed). Verify loads it on every admin request; only
	// ChangePassword stores it, under changeMu.
	admin    atomic.Pointer[adminState]
	changeMu sync.Mutex
}

// New builds an Authority from opts. For a file-backed admin it loads
// <DataDir>/admin-credentials.json, creating it with the default admin/admin
// password on first start; a file that cannot be read or parsed is an error
// naming the file. Hashing env passwords costs one bcrypt hash each, so New
// takes a noticeable fraction of a second at the default cost.
func New(opts Options) (*Authority, error) {
	a := &Authority{
		users: make(map[string]*user, 3),
		cost:  opts.BcryptCost,
		ttl:   opts.TokenTTL,
		now:   opts.Now,
	}
	if a.cost == 0 {
		a.cost = bcrypt.DefaultCost
	}
	if a.cost < bcrypt.MinCost || a.cost > bcrypt.MaxCost {
		return nil, fmt.Errorf("auth: bcrypt cost %d is outside [%d, %d]", a.cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	if a.ttl <= 0 {
		a.ttl = DefaultTokenTTL
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.keys = newSigningKeys(opts.Secret, opts.PreviousSecrets, a.now)

	// The admin.
	switch {
	case opts.AdminUser != "" && opts.AdminPassword != "":
		a.envManaged = true
		a.adminName = opts.AdminUser
		if err := a.addEnvUser(opts.AdminUser, opts.AdminPassword, Admin); err != nil {
			return nil, err
		}
	case opts.AdminPassword != "":
		return nil, errors.New("auth: MAXINE_ADMIN_PASSWORD is set but MAXINE_ADMIN_USERNAME is empty; set both for an env-managed admin, or neither")
	default:
		a.adminName = opts.AdminUser
		if a.adminName == "" {
			a.adminName = DefaultAdminUser
		}
		if opts.DataDir == "" {
			return nil, errors.New("auth: a data dir is required to store the file-backed admin credentials")
		}
		a.credPath = credentialsPath(opts.DataDir)
		st, err := loadOrCreateCredentials(a.credPath, a.cost, a.now())
		if err != nil {
			return nil, err
		}
		a.admin.Store(st)
		a.users[a.adminName] = &user{name: a.adminName, role: Admin}
	}

	// The optional env accounts.
	for _, acc := range []struct {
		user, password, env string
		role                Role
	}{
		{opts.OperatorUser, opts.OperatorPassword, "MAXINE_OPERATOR", Operator},
		{opts.ViewerUser, opts.ViewerPassword, "MAXINE_VIEWER", Viewer},
	} {
		switch {
		case acc.user == "" && acc.password == "":
			continue
		case acc.user == "":
			return nil, fmt.Errorf("auth: %s_PASSWORD is set but %s_USERNAME is empty", acc.env, acc.env)
		case acc.password == "":
			return nil, fmt.Errorf("auth: %s_USERNAME is set but %s_PASSWORD is empty", acc.env, acc.env)
		}
		if err := a.addEnvUser(acc.user, acc.password, acc.role); err != nil {
			return nil, err
		}
	}

	dummy, err := bcrypt.GenerateFromPassword([]byte("maxine-unknown-user"), a.cost)
	if err != nil {
		return nil, fmt.Errorf("auth: cannot hash: %w", err)
	}
	a.dummyHash = dummy
	return a, nil
}

// addEnvUser registers an env account, refusing duplicate names: two
// accounts with one name would make the role a token carries ambiguous.
func (a *Authority) addEnvUser(name, password string, role Role) error {
	if u, ok := a.users[name]; ok {
		return fmt.Errorf("auth: user name %q is configured for both the %s and the %s account", name, u.role, role)
	}
	hash, err := bcrypt.GenerateFromPassword(prehash(password), a.cost)
	if err != nil {
		return fmt.Errorf("auth: cannot hash the %s password: %w", role, err)
	}
	a.users[name] = &user{name: name, role: role, hash: hash}
	return nil
}

// prehash maps an env password of any length to 64 bytes, under bcrypt's
// 72-byte limit. Hex keeps NUL bytes out of the bcrypt input.
func prehash(password string) []byte {
	sum := sha256.Sum256([]byte(password))
	out := make([]byte, hex.EncodedLen(len(sum)))
	hex.Encode(out, sum[:])
	return out
}

// UsingDefaultAdmin reports whether the file-backed admin still has the
// default admin/admin password. The caller should log a loud warning: anyone
// who can reach the admin port can take the registry over.
func (a *Authority) UsingDefaultAdmin() bool {
	st := a.admin.Load()
	return st != nil && st.isDefault
}

// AdminEnvManaged reports whether the admin password comes from the
// environment, in which case ChangePassword returns ErrEnvManaged.
func (a *Authority) AdminEnvManaged() bool { return a.envManaged }

// SignIn checks a user name and password and returns a fresh access token
// and the user's role. Any failure is ErrBadCredentials. Every call does
// exactly one bcrypt comparison, for unknown users too, so response time
// does not tell which user names exist. Callers must rate-limit it (see
// RateLimiter): bcrypt is deliberately expensive.
func (a *Authority) SignIn(name, password string) (token string, role Role, err error) {
	u, ok := a.users[name]
	if !ok {
		_ = bcrypt.CompareHashAndPassword(a.dummyHash, []byte(password))
		return "", RoleNone, ErrBadCredentials
	}
	var cv uint64
	if u.hash != nil {
		if bcrypt.CompareHashAndPassword(u.hash, prehash(password)) != nil {
			return "", RoleNone, ErrBadCredentials
		}
	} else {
		st := a.admin.Load()
		if len(password) > bcryptMaxPassword {
			// bcrypt would compare only the first 72 bytes; a stored password
			// is never longer than that, so a longer one cannot be right.
			_ = bcrypt.CompareHashAndPassword(a.dummyHash, []byte(password[:bcryptMaxPassword]))
			return "", RoleNone, ErrBadCredentials
		}
		if bcrypt.CompareHashAndPassword(st.hash, []byte(password)) != nil {
			return "", RoleNone, ErrBadCredentials
		}
		cv = st.tokenVersion()
	}
	token, err = a.keys.sign(u.name, u.role, cv, a.now(), a.ttl)
	if err != nil {
		return "", RoleNone, err
	}
	return token, u.role, nil
}

// ChangePassword changes the file-backed admin's password. It returns
// ErrEnvManaged when the admin is env-managed, ErrBadCredentials when name
// is not the admin or oldPassword is wrong, and ErrWeakPassword when
// newPassword is empty or longer than 72 bytes. On success the new bcrypt
// hash and an incremented credential version are persisted before the change
// takes effect, so every token issued earlier stops verifying, across
// restarts too. Any other error is an I/O error naming the file; the old
// password then stays in force.
func (a *Authority) ChangePassword(name, oldPassword, newPassword string) error {
	if a.envManaged {
		return ErrEnvManaged
	}
	if name != a.adminName {
		return ErrBadCredentials
	}
	if newPassword == "" || len(newPassword) > bcryptMaxPassword {
		return ErrWeakPassword
	}
	// Serialise changes: two concurrent changes must not both start from
	// the same credential version.
	a.changeMu.Lock()
	defer a.changeMu.Unlock()
	cur := a.admin.Load()
	if len(oldPassword) > bcryptMaxPassword || bcrypt.CompareHashAndPassword(cur.hash, []byte(oldPassword)) != nil {
		return ErrBadCredentials
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(newPassword), a.cost)
	if err != nil {
		return fmt.Errorf("auth: cannot hash the new password: %w", err)
	}
	next := &adminState{
		hash:              hash,
		credentialVersion: cur.credentialVersion + 1,
		epoch:             cur.epoch,
		isDefault:         newPassword == DefaultAdminPassword,
	}
	if err := storeCredentials(a.credPath, next, a.now()); err != nil {
		return err
	}
	a.admin.Store(next)
	return nil
}
