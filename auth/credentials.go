package auth

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/maxine-io/maxine/internal/atomicfile"
)

// CredentialsFile is the name of the file-backed admin's credentials file
// inside Options.DataDir.
const CredentialsFile = "admin-credentials.json"

// credentialsFile is the on-disk form of adminState. The password is only
// ever stored as a bcrypt hash.
//
// CredentialEpoch is 16 hex digits (a string, so tools that read JSON
// numbers as doubles cannot round it). It is drawn at random when the file is
// created and never changes afterwards; see adminState.tokenVersion for why.
// Files written before the epoch existed have none, which reads as 0 and
// keeps the tokens issued under them valid.
type credentialsFile struct {
	PasswordHash      string    `json:"passwordHash"`
	CredentialVersion uint64    `json:"credentialVersion"`
	CredentialEpoch   string    `json:"credentialEpoch,omitempty"`
	UpdatedAt         time.Time `json:"updatedAt"`
}

func credentialsPath(dataDir string) string {
	return filepath.Join(dataDir, CredentialsFile)
}

// loadOrCreateCredentials reads the admin credentials file, creating it with
// the default password when it does not exist yet.
func loadOrCreateCredentials(path string, cost int, now time.Time) (*adminState, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		hash, err := bcrypt.GenerateFromPassword([]byte(DefaultAdminPassword), cost)
		if err != nil {
			return nil, fmt.Errorf("auth: cannot hash the default admin password: %w", err)
		}
		st := &adminState{hash: hash, epoch: newEpoch(), isDefault: true}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("auth: cannot create data dir for %q: %w", path, err)
		}
		if err := storeCredentials(path, st, now); err != nil {
			return nil, err
		}
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auth: cannot read admin credentials file %q: %w", path, err)
	}
	st, err := parseCredentials(data)
	if err != nil {
		return nil, fmt.Errorf("auth: cannot parse admin credentials file %q (fix or delete it; deleting resets the admin password to the default): %w", path, err)
	}
	return st, nil
}

func parseCredentials(data []byte) (*adminState, error) {
	var f credentialsFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	if f.PasswordHash == "" {
		return nil, errors.New("passwordHash is missing")
	}
	hash := []byte(f.PasswordHash)
	// Cost parses the hash's prefix, so it rejects anything that is not a
	// bcrypt hash; a broken hash would otherwise lock the admin out with
	// nothing but "bad credentials" to show for it.
	if _, err := bcrypt.Cost(hash); err != nil {
		return nil, fmt.Errorf("passwordHash is not a bcrypt hash: %w", err)
	}
	var epoch uint64
	if f.CredentialEpoch != "" {
		b, err := hex.DecodeString(f.CredentialEpoch)
		if err != nil || len(b) != 8 {
			return nil, fmt.Errorf("credentialEpoch %q is not 16 hex digits", f.CredentialEpoch)
		}
		epoch = binary.BigEndian.Uint64(b)
	}
	return &adminState{
		hash:              hash,
		credentialVersion: f.CredentialVersion,
		epoch:             epoch,
		// One comparison at start-up, so UsingDefaultAdmin tells the truth
		// even for a file written by an older version or by hand.
		isDefault: bcrypt.CompareHashAndPassword(hash, []byte(DefaultAdminPassword)) == nil,
	}, nil
}

// storeCredentials replaces the credentials file atomically: write a temp
// file in the same directory, fsync it, rename it over the old one, fsync
// the directory. A crash leaves either the old or the new file, never a torn
// one; losing the file would reset the admin to admin/admin.
func storeCredentials(path string, st *adminState, now time.Time) error {
	f := credentialsFile{
		PasswordHash:      string(st.hash),
		CredentialVersion: st.credentialVersion,
		UpdatedAt:         now.UTC(),
	}
	if st.epoch != 0 {
		f.CredentialEpoch = hex.EncodeToString(binary.BigEndian.AppendUint64(nil, st.epoch))
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("auth: cannot encode admin credentials: %w", err)
	}
	data = append(data, '\n')

	if err := atomicfile.Write(path, atomicfile.Options{}, func(w *bufio.Writer) error {
		_, err := w.Write(data)
		return err
	}); err != nil {
		return fmt.Errorf("auth: cannot store admin credentials: %w", err)
	}
	return nil
}

// newEpoch draws the epoch of a new credentials file: 64 random bits, never
// 0 (0 is what a file without an epoch reads as).
func newEpoch() uint64 {
	var b [8]byte
	// crypto/rand.Read never returns an error (it crashes the program when
	// the OS has no randomness), so there is nothing to handle.
	_, _ = rand.Read(b[:])
	return max(binary.BigEndian.Uint64(b[:]), 1)
}
