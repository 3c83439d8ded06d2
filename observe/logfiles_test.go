package observe

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// logDirFixture builds base/secret.txt (outside) and base/logs with a real
// log file, a subdirectory, and symlinks leading out of and within logs.
// It returns the logs directory and the secret file's path.
func logDirFixture(t testing.TB) (logs, secret string) {
	t.Helper()
	base := t.TempDir()
	logs = filepath.Join(base, "logs")
	secret = filepath.Join(base, "secret.txt")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(logs, 0o755))
	must(os.WriteFile(secret, []byte("secret"), 0o644))
	must(os.WriteFile(filepath.Join(logs, "maxine.log"), []byte("line 1\nline 2\n"), 0o644))
	must(os.WriteFile(filepath.Join(logs, "maxine.log.1"), []byte("old\n"), 0o644))
	must(os.Mkdir(filepath.Join(logs, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(logs, "sub", "nested.log"), []byte("nested\n"), 0o644))
	must(os.Symlink("../secret.txt", filepath.Join(logs, "escape-rel")))
	must(os.Symlink(secret, filepath.Join(logs, "escape-abs")))
	must(os.Symlink("/etc/passwd", filepath.Join(logs, "passwd")))
	must(os.Symlink("maxine.log", filepath.Join(logs, "current")))
	return logs, secret
}

func TestListLogFiles(t *testing.T) {
	logs, _ := logDirFixture(t)
	files, err := ListLogFiles(logs)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Name != "maxine.log" || files[1].Name != "maxine.log.1" {
		t.Fatalf("files = %+v", files)
	}
	if files[0].Size != 14 || files[0].ModTime.IsZero() {
		t.Errorf("file 0 = %+v", files[0])
	}
	for _, dir := range []string{"", filepath.Join(logs, "missing")} {
		if files, err := ListLogFiles(dir); err != nil || len(files) != 0 {
			t.Errorf("ListLogFiles(%q) = %v, %v", dir, files, err)
		}
	}
}

func TestOpenLogFile(t *testing.T) {
	logs, _ := logDirFixture(t)
	f, err := OpenLogFile(logs, "maxine.log")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(f)
	f.Close()
	if string(data) != "line 1\nline 2\n" {
		t.Errorf("read %q", data)
	}

	for _, name := range []string{
		"../x", "/etc/passwd", "a/b", "..", ".", "", "sub/nested.log", `..\x`, `a\b`,
		"maxine.log\x00", "..maxine.log", "escape-rel", "escape-abs", "passwd", "current", "sub",
		"../logs/maxine.log", "./maxine.log",
	} {
		f, err := OpenLogFile(logs, name)
		if !errors.Is(err, ErrBadLogName) {
			if f != nil {
				f.Close()
			}
			t.Errorf("OpenLogFile(%q) = %v, want ErrBadLogName", name, err)
		}
	}
	if _, err := OpenLogFile(logs, "missing.log"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	if _, err := OpenLogFile("", "maxine.log"); !errors.Is(err, ErrBadLogName) {
		t.Errorf("no dir: %v", err)
	}
}

// FuzzOpenLogFile checks that whatever the name, OpenLogFile never opens
// anything but a regular file directly inside the log directory.
func FuzzOpenLogFile(f *testing.F) {
	for _, s := range []string{
		"maxine.log", "../secret.txt", "/etc/passwd", "escape-rel", "escape-abs",
		"current", "sub/nested.log", "..", ".", `..\secret.txt`, "maxine.log\x00.txt",
	} {
		f.Add(s)
	}
	logs, secret := logDirFixture(f)
	secretInfo, err := os.Stat(secret)
	if err != nil {
		f.Fatal(err)
	}
	var inside []os.FileInfo
	for _, name := range []string{"maxine.log", "maxine.log.1"} {
		fi, err := os.Stat(filepath.Join(logs, name))
		if err != nil {
			f.Fatal(err)
		}
		inside = append(inside, fi)
	}
	f.Fuzz(func(t *testing.T, name string) {
		file, err := OpenLogFile(logs, name)
		if err != nil {
			if file != nil {
				t.Fatalf("OpenLogFile(%q) returned a file and an error", name)
			}
			return
		}
		defer file.Close()
		fi, err := file.Stat()
		if err != nil {
			t.Fatal(err)
		}
		if os.SameFile(fi, secretInfo) {
			t.Fatalf("OpenLogFile(%q) opened the file outside the directory", name)
		}
		for _, in := range inside {
			if os.SameFile(fi, in) {
				return
			}
		}
		t.Fatalf("OpenLogFile(%q) opened %s, not a log file of the directory", name, fi.Name())
	})
}
