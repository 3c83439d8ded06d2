package deploy

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The image's contract: where the binary is, who runs it, what it exposes.
const (
	binPath     = "/usr/local/bin/maxine"
	runtimeUser = "65532:65532"
	maxImageMB  = 30
)

// standInVersion names the recipe of the stand-in base images: bump it
// when what goes into them changes, so a cached one is not reused.
const standInVersion = "1"

func TestContainerImage(t *testing.T) {
	if os.Getenv("MAXINE_CONTAINER_TEST") != "1" {
		t.Skip("needs a Docker engine: run `make container` (sets MAXINE_CONTAINER_TEST=1 after starting one)")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run(2*time.Minute, "docker", "info", "--format", "{{.ServerVersion}}"); err != nil {
		t.Fatalf("no Docker engine answers (run deploy/docker-up.sh): %v\n%s", err, out)
	}
	suffix := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()%1_000_000)

	// Local stand-ins for the two base images: no registry can be pulled
	// from here. Kept between runs (they are the cache of a warm run).
	begin := time.Now()
	builder := builderStandIn(t)
	runtimeImg := runtimeStandIn(t)
	t.Logf("stand-in base images ready in %s: %s, %s", time.Since(begin).Round(time.Millisecond), builder, runtimeImg)

	// Build the repository's Dockerfile unchanged, with the base images
	// and the Go module proxy settings of this host as build arguments.
	image := "maxine-test/maxine:" + suffix
	commit, err := run(time.Minute, "git", "-C", root, "rev-parse", "--short", "HEAD")
	if err != nil {
		commit = "" // not a git checkout
	}
	args := []string{"build", "--network", "host", "--force-rm",
		"--build-arg", "BUILDER_IMAGE=" + builder, "--build-arg", "RUNTIME_IMAGE=" + runtimeImg,
		"--build-arg", "VERSION=0.0.0-test", "--build-arg", "COMMIT=" + strings.TrimSpace(commit)}
	for _, k := range []string{"GOPROXY", "GOSUMDB", "GOPRIVATE", "GONOSUMDB", "GONOPROXY", "GOINSECURE"} {
		if v := goEnv(t, k); v != "" {
			args = append(args, "--build-arg", k+"="+v)
		}
	}
	args = append(args, "-t", image, root)
	begin = time.Now()
	if out, err := run(15*time.Minute, "docker", args...); err != nil {
		t.Fatalf("docker build: %v\n%s", err, tail(out, 60))
	}
	t.Logf("docker build took %s", time.Since(begin).Round(time.Millisecond))
	t.Cleanup(func() { run(2*time.Minute, "docker", "rmi", "-f", image) })

	// The image's metadata: the contract the Dockerfile promises.
	var inspect []struct {
		Size   int64
		Config struct {
			User         string
			Entrypoint   []string
			ExposedPorts map[string]struct{}
			Volumes      map[string]struct{}
			Env          []string
			Healthcheck  struct{ Test []string }
		}
	}
	out, err := run(time.Minute, "docker", "image", "inspect", image)
	if err != nil || json.Unmarshal([]byte(out), &inspect) != nil || len(inspect) != 1 {
		t.Fatalf("docker image inspect: %v\n%s", err, out)
	}
	img := inspect[0]
	t.Logf("image size: %.1f MB (%d bytes)", float64(img.Size)/1e6, img.Size)
	fmt.Printf("container image size: %.1f MB\n", float64(img.Size)/1e6)
	if img.Size >= maxImageMB*1e6 {
		t.Errorf("image is %.1f MB; keep it under %d MB", float64(img.Size)/1e6, maxImageMB)
	}
	cfg := img.Config
	if cfg.User != runtimeUser {
		t.Errorf("USER = %q, want %q", cfg.User, runtimeUser)
	}
	if strings.Join(cfg.Entrypoint, " ") != binPath {
		t.Errorf("ENTRYPOINT = %q, want [%s]", cfg.Entrypoint, binPath)
	}
	for _, p := range []string{"8000/tcp", "8080/tcp"} {
		if _, ok := cfg.ExposedPorts[p]; !ok {
			t.Errorf("EXPOSE lacks %s: %v", p, cfg.ExposedPorts)
		}
	}
	if _, ok := cfg.Volumes["/data"]; !ok {
		t.Errorf("VOLUME lacks /data: %v", cfg.Volumes)
	}
	// Exec form: the runtime image has no shell.
	if got := strings.Join(cfg.Healthcheck.Test, " "); got != "CMD "+binPath+" health" {
		t.Errorf("HEALTHCHECK = %q, want exec form [CMD %s health]", got, binPath)
	}

	// An upstream on the host that the gateway proxies to.
	up := upstream(t)
	volume := "maxine-test-data-" + suffix
	if out, err := run(time.Minute, "docker", "volume", "create", volume); err != nil {
		t.Fatalf("docker volume create: %v\n%s", err, out)
	}
	t.Cleanup(func() { run(time.Minute, "docker", "volume", "rm", "-f", volume) })

	// First container: a fresh named volume on /data, read-only root, no
	// capabilities, host network on free loopback ports.
	c1 := startContainer(t, image, volume, "maxine-test-1-"+suffix)
	checkRunning(t, c1)
	if r := c1.post(t, "/api/maxine/serviceops/register",
		fmt.Sprintf(`{"serviceName":"echo","nodeName":"echo-1","hostName":"127.0.0.1","port":%d,"timeOut":600}`, up)); r.code != 200 {
		t.Fatalf("registration through the admin port: %d %s", r.code, r.body)
	}
	if r := c1.get(t, c1.gateway, "/echo/hello"); r.code != 200 || r.body != "upstream saw /hello" {
		t.Fatalf("request through the gateway: %d %q, want 200 %q", r.code, r.body, "upstream saw /hello")
	}

	// docker stop sends SIGTERM: a graceful stop exits 0 and flushes the
	// state file into the volume.
	if out, err := run(2*time.Minute, "docker", "stop", "-t", "30", c1.name); err != nil {
		t.Fatalf("docker stop: %v\n%s", err, out)
	}
	if code := c1.inspect(t, "{{.State.ExitCode}}"); code != "0" {
		t.Errorf("exit code after docker stop = %s, want 0\n%s", code, c1.logs())
	}
	if logs := c1.logs(); !strings.Contains(logs, "maxine stopped") {
		t.Errorf("no graceful stop in the logs:\n%s", tail(logs, 20))
	}

	// Second container on the same volume: the registration is back
	// before it answers, without registering again.
	c2 := startContainer(t, image, volume, "maxine-test-2-"+suffix)
	checkRunning(t, c2)
	if r := c2.get(t, c2.gateway, "/echo/again"); r.code != 200 || r.body != "upstream saw /again" {
		t.Fatalf("after restart on the same volume, the gateway answers %d %q; want the restored node's %q\n%s",
			r.code, r.body, "upstream saw /again", c2.logs())
	}
	if logs := c2.logs(); !strings.Contains(logs, `"restored":1`) {
		t.Errorf("the second container did not report the restored node:\n%s", tail(logs, 20))
	}
	if out, err := run(2*time.Minute, "docker", "stop", "-t", "30", c2.name); err != nil || c2.inspect(t, "{{.State.ExitCode}}") != "0" {
		t.Errorf("second docker stop: %v %s\n%s", err, out, c2.logs())
	}
}

// container is one running maxine container on host-network ports.
type container struct {
	name           string
	admin, gateway string // 127.0.0.1:port
}

func startContainer(t *testing.T, image, volume, name string) *container {
	t.Helper()
	c := &container{name: name, admin: freeAddr(t), gateway: freeAddr(t)}
	args := []string{"run", "-d", "--name", name,
		"--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		"--network", "host", "-v", volume + ":/data",
		"-e", "MAXINE_ADMIN_ADDR=" + c.admin, "-e", "MAXINE_GATEWAY_ADDR=" + c.gateway,
		"-e", "MAXINE_HEALTH_CHECKS=false",
		// The image's own HEALTHCHECK command, checked more often than its
		// default so the test need not wait 10 s for the first result.
		"--health-interval", "1s", "--health-start-period", "1s",
		image}
	if out, err := run(2*time.Minute, "docker", args...); err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	t.Cleanup(func() { run(2*time.Minute, "docker", "rm", "-f", "-v", name) })
	return c
}

// checkRunning waits for the container to be healthy and checks both
// listeners, `maxine health` inside it and the user it runs as.
func checkRunning(t *testing.T, c *container) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for i := 0; ; i++ {
		if r := c.get(t, c.admin, "/api/actuator/health"); r.code == 200 {
			break
		}
		if state := c.inspect(t, "{{.State.Status}}"); state != "running" || time.Now().After(deadline) || i > 900 {
			t.Fatalf("%s did not answer on its admin port (state %s):\n%s", c.name, state, c.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := c.get(t, c.gateway, "/no-such-service/x"); r.code != 404 && r.code != 503 {
		t.Errorf("gateway listener: %d %q, want Maxine's 404 for an unknown service", r.code, r.body)
	}
	out, err := run(time.Minute, "docker", "exec", c.name, binPath, "health")
	if err != nil || !strings.HasPrefix(out, "UP ") {
		t.Errorf("docker exec %s health: %v %q, want exit 0 and UP", binPath, err, out)
	}
	// Docker's own HEALTHCHECK (the image's exec-form command) says healthy.
	for i := 0; ; i++ {
		h := c.inspect(t, "{{.State.Health.Status}}")
		if h == "healthy" {
			break
		}
		if h == "unhealthy" || i > 600 {
			t.Fatalf("HEALTHCHECK status %q:\n%s", h, c.inspect(t, "{{json .State.Health}}"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The process, seen from the host, runs as uid and gid 65532.
	pid := c.inspect(t, "{{.State.Pid}}")
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatalf("reading the container process's status: %v", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && (f[0] == "Uid:" || f[0] == "Gid:") {
			if f[1] != "65532" {
				t.Errorf("container process %s %s, want 65532", f[0], strings.Join(f[1:], " "))
			}
		}
	}
	if ro := c.inspect(t, "{{.HostConfig.ReadonlyRootfs}}"); ro != "true" {
		t.Errorf("ReadonlyRootfs = %s", ro)
	}
}

type reply struct {
	code int
	body string
}

var client = &http.Client{Timeout: 5 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (c *container) get(t *testing.T, addr, path string) reply {
	return do(t, "GET", "http://"+addr+path, "")
}

func (c *container) post(t *testing.T, path, body string) reply {
	return do(t, "POST", "http://"+c.admin+path, body)
}

func do(t *testing.T, method, url, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return reply{code: 0, body: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return reply{code: resp.StatusCode, body: string(b)}
}

func (c *container) inspect(t *testing.T, format string) string {
	t.Helper()
	out, err := run(time.Minute, "docker", "inspect", "-f", format, c.name)
	if err != nil {
		t.Fatalf("docker inspect %s: %v\n%s", c.name, err, out)
	}
	return strings.TrimSpace(out)
}

func (c *container) logs() string {
	out, _ := run(time.Minute, "docker", "logs", c.name)
	return out
}

// upstream serves "upstream saw <path>" on a free loopback port.
func upstream(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "upstream saw "+r.URL.Path)
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// run runs a command with a time limit and returns its combined output.
func run(limit time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func goEnv(t *testing.T, key string) string {
	out, err := run(time.Minute, "go", "env", key)
	if err != nil {
		t.Fatalf("go env %s: %v\n%s", key, err, out)
	}
	return strings.TrimSpace(out)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// imageExists reports whether the engine has the image ref.
func imageExists(ref string) bool {
	_, err := run(time.Minute, "docker", "image", "inspect", ref)
	return err == nil
}

// builderStandIn is a local stand-in for the golang image: a root
// filesystem with this host's Go toolchain at /usr/local/go, busybox for
// the shell and tools the Dockerfile's RUN lines use, and the host's CA
// bundle, which is what lets `go mod download` reach the module proxy.
func builderStandIn(t *testing.T) string {
	t.Helper()
	goroot := goEnv(t, "GOROOT")
	v, err := os.ReadFile(filepath.Join(goroot, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := strings.Fields(string(v))[0]
	ref := "maxine-standin/go-builder:" + goVersion + "-" + standInVersion
	if imageExists(ref) {
		return ref
	}
	busybox := "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		t.Fatalf("%s missing: run deploy/docker-up.sh (installs busybox-static)", busybox)
	}
	r := newRootfs()
	r.dir("/bin", 0o755)
	r.file("/bin/busybox", busybox)
	for _, tool := range []string{"sh", "mkdir", "cp", "chown", "chmod", "ls", "cat", "rm", "env", "id", "true"} {
		r.symlink("/bin/"+tool, "busybox")
	}
	r.dir("/etc", 0o755)
	r.data("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532:nonroot:/home/nonroot:/bin/false\n", 0o644)
	r.data("/etc/group", "root:x:0:\nnonroot:x:65532:\n", 0o644)
	r.dir("/etc/ssl", 0o755)
	r.dir("/etc/ssl/certs", 0o755)
	r.file("/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/certs/ca-certificates.crt")
	r.dir("/tmp", 0o1777)
	r.dir("/root", 0o700)
	r.dir("/go", 0o777)
	r.dir("/usr", 0o755)
	r.dir("/usr/local", 0o755)
	r.tree("/usr/local/go", goroot, "test", "doc", "misc", "api")
	importImage(t, r, ref,
		"ENV PATH=/go/bin:/usr/local/go/bin:/bin", "ENV GOPATH=/go", "ENV HOME=/root", "WORKDIR /go")
	return ref
}

// runtimeStandIn is a local stand-in for distroless static :nonroot: an
// otherwise empty root filesystem with passwd and group entries for the
// nonroot user 65532 and an empty /tmp.
func runtimeStandIn(t *testing.T) string {
	t.Helper()
	ref := "maxine-standin/runtime:nonroot-" + standInVersion
	if imageExists(ref) {
		return ref
	}
	r := newRootfs()
	r.dir("/etc", 0o755)
	r.data("/etc/passwd", "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n", 0o644)
	r.data("/etc/group", "root:x:0:\nnonroot:x:65532:\n", 0o644)
	r.dir("/tmp", 0o1777)
	r.dir("/home", 0o755)
	r.dir("/home/nonroot", 0o700)
	importImage(t, r, ref)
	return ref
}

// rootfs is a root filesystem written as a tar stream for docker import.
type rootfs struct {
	ops []func(*tar.Writer) error // entries, in order
}

func newRootfs() *rootfs { return &rootfs{} }

func (r *rootfs) dir(name string, mode int64) {
	r.ops = append(r.ops, func(w *tar.Writer) error {
		return w.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(name, "/") + "/", Mode: mode, ModTime: time.Unix(0, 0)})
	})
}

func (r *rootfs) data(name, content string, mode int64) {
	r.ops = append(r.ops, func(w *tar.Writer) error {
		if err := w.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(name, "/"), Mode: mode, Size: int64(len(content)), ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		_, err := io.WriteString(w, content)
		return err
	})
}

func (r *rootfs) symlink(name, target string) {
	r.ops = append(r.ops, func(w *tar.Writer) error {
		return w.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: strings.TrimPrefix(name, "/"), Linkname: target, Mode: 0o777, ModTime: time.Unix(0, 0)})
	})
}

func (r *rootfs) file(name, src string) {
	r.ops = append(r.ops, func(w *tar.Writer) error { return copyFile(w, strings.TrimPrefix(name, "/"), src) })
}

// tree copies the directory src to name, leaving out the top-level
// entries in skip.
func (r *rootfs) tree(name, src string, skip ...string) {
	r.ops = append(r.ops, func(w *tar.Writer) error {
		return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			for _, s := range skip {
				if rel == s {
					return filepath.SkipDir
				}
			}
			target := strings.TrimPrefix(filepath.Join(name, rel), "/")
			info, err := os.Lstat(p)
			if err != nil {
				return err
			}
			switch {
			case info.IsDir():
				return w.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: target + "/", Mode: int64(info.Mode().Perm()), ModTime: info.ModTime()})
			case info.Mode()&fs.ModeSymlink != 0:
				link, err := os.Readlink(p)
				if err != nil {
					return err
				}
				return w.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: target, Linkname: link, Mode: 0o777, ModTime: info.ModTime()})
			case info.Mode().IsRegular():
				return copyFile(w, target, p)
			}
			return nil // sockets, devices: none expected in a toolchain
		})
	})
}

func copyFile(w *tar.Writer, name, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if err := w.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(info.Mode().Perm()), Size: info.Size(), ModTime: info.ModTime()}); err != nil {
		return err
	}
	_, err = io.CopyN(w, f, info.Size())
	return err
}

// importImage streams the root filesystem into `docker import`.
func importImage(t *testing.T, r *rootfs, ref string, changes ...string) {
	t.Helper()
	args := []string{"import"}
	for _, c := range changes {
		args = append(args, "--change", c)
	}
	args = append(args, "-", ref)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	pr, pw := io.Pipe()
	cmd.Stdin = pr
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	werr := make(chan error, 1)
	go func() {
		tw := tar.NewWriter(pw)
		var err error
		for _, op := range r.ops {
			if err = op(tw); err != nil {
				break
			}
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
		werr <- err
	}()
	err := cmd.Wait()
	pr.Close()
	if e := <-werr; e != nil {
		t.Fatalf("writing the root filesystem of %s: %v", ref, e)
	}
	if err != nil {
		t.Fatalf("docker import %s: %v\n%s", ref, err, out.String())
	}
	t.Logf("imported stand-in %s", ref)
}
