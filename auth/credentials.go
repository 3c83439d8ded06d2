package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// CredentialsFile is the name of the file-backed admin's credentials file
// inside Options.DataDir.
const CredentialsFile = "admin-credentials.json"

// credentialsFile is the on-disk form of adminState. The password is only
// ever stored as a bcrypt hash.
type credentialsFile struct {
	PasswordHash      string    `json:"passwordHash"`
	CredentialVersion uint64    `json:"credentialVersion"`
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
		st := &adminState{hash: hash, isDefault: true}
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
	return &adminState{
		hash:              hash,
		credentialVersion: f.CredentialVersion,
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
	data, err := json.MarshalIndent(credentialsFile{
		PasswordHash:      string(st.hash),
		CredentialVersion: st.credentialVersion,
		UpdatedAt:         now.UTC(),
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("auth: cannot encode admin credentials: %w", err)
	}
	data = append(data, '\n')

	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+CredentialsFile+".*.tmp") // created 0600
	if err != nil {
		return fmt.Errorf("auth: cannot write admin credentials file %q: %w", path, err)
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	// CreateTemp already uses 0600; Chmod states the requirement and
	// covers platforms or umasks that would do otherwise.
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("auth: cannot write admin credentials file %q: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("auth: cannot write admin credentials file %q: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("auth: cannot sync admin credentials file %q: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("auth: cannot write admin credentials file %q: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("auth: cannot replace admin credentials file %q: %w", path, err)
	}
	ok = true
	// Make the rename itself durable. Not every platform can fsync a
	// directory; the file contents are already safe, so failures here are
	// ignored.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
