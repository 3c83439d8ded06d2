package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// BuildMaxine compiles ./cmd/maxine of the module around the working
// directory into dir and returns the binary's path.
func BuildMaxine(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "maxine")
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/maxine")
	if gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output(); err == nil {
		if p := strings.TrimSpace(string(gomod)); p != "" && p != os.DevNull {
			cmd.Dir = filepath.Dir(p)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		first := ""
		for line := range strings.SplitSeq(string(out), "\n") {
			if line != "" && !strings.HasPrefix(line, "#") {
				first = line
				break
			}
		}
		return "", fmt.Errorf("cannot build ./cmd/maxine (%v: %s); run the bench inside the module or pass -maxine-bin", err, first)
	}
	return bin, nil
}

// maxineHelp returns `maxine --help` output, used to find out which
// optional flags (--metrics, --cpuprofile) this build supports.
func maxineHelp(bin string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, "--help").CombinedOutput()
	return string(out)
}

// supportsFlag reports whether help text lists the flag --name (or
// -name) itself, not merely a longer flag that starts with it.
func supportsFlag(help, name string) bool {
	re := regexp.MustCompile(`(?m)(?:^|[\s,])--?` + regexp.QuoteMeta(name) + `(?:[\s=,\[]|$)`)
	return re.MatchString(help)
}

// Maxine is a running maxine process started by the bench, with its own
// data directory and loopback ports.
type Maxine struct {
	AdminAddr   string
	GatewayAddr string
	proc        *Process
	admin       *fasthttp.HostClient
}

// MaxineOptions are the knobs a scenario may turn.
type MaxineOptions struct {
	Label      string   // names the data dir and log file
	ExtraArgs  []string // e.g. --metrics=false, --cpuprofile <file>
	StartLimit time.Duration
	CPUs       int // GOMAXPROCS: the run's CPU budget (Config.CPUs); 0 means defaultCPUs
}

// StartMaxine starts bin on two free loopback ports with GOMAXPROCS set to
// the CPU budget, and waits until GET /api/actuator/health answers 200.
func StartMaxine(ctx context.Context, bin, runDir string, o MaxineOptions) (*Maxine, error) {
	dataDir := filepath.Join(runDir, "maxine-"+o.Label)
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create maxine data dir: %w", err)
	}
	ap, err := freePort()
	if err != nil {
		return nil, err
	}
	gp, err := freePort()
	if err != nil {
		return nil, err
	}
	m := &Maxine{AdminAddr: loopback(ap), GatewayAddr: loopback(gp)}
	args := []string{
		"--admin-addr", m.AdminAddr,
		"--gateway-addr", m.GatewayAddr,
		"--data-dir", dataDir,
		"--log-level", "warn",
	}
	args = append(args, o.ExtraArgs...)
	cpus := o.CPUs
	if cpus <= 0 {
		cpus = defaultCPUs
	}
	env := []string{"GOMAXPROCS=" + strconv.Itoa(cpus)}
	p, err := StartProcess("maxine", filepath.Join(runDir, "maxine-"+o.Label+".log"), bin, env, args...)
	if err != nil {
		return nil, err
	}
	m.proc = p
	limit := o.StartLimit
	if limit <= 0 {
		limit = 15 * time.Second
	}
	if err := p.WaitHTTP(ctx, "http://"+m.AdminAddr+"/api/actuator/health", 200, limit); err != nil {
		p.Stop()
		return nil, err
	}
	m.admin = &fasthttp.HostClient{
		Addr:                      m.AdminAddr,
		MaxConns:                  512,
		ReadTimeout:               10 * time.Second,
		WriteTimeout:              10 * time.Second,
		MaxIdemponentCallAttempts: 1,
	}
	return m, nil
}

// Pid returns the maxine process id.
func (m *Maxine) Pid() int { return m.proc.Pid() }

// Stop sends SIGTERM, then SIGKILL after 5 s.
func (m *Maxine) Stop() {
	if m == nil {
		return
	}
	if m.admin != nil {
		m.admin.CloseIdleConnections()
	}
	m.proc.Stop()
}

// Registration is one node registration, rendered to the admin API's JSON.
type Registration struct {
	Service string
	Node    string
	Host    string
	Port    int
	TimeOut int // seconds
	Weight  int
	// Metadata, such as a node policy key; sent in key order.
	Metadata map[string]string
}

// appendRegistration appends the JSON body of r to dst without
// reflection; names and hosts used by the bench never need escaping.
func appendRegistration(dst []byte, r Registration) []byte {
	dst = append(dst, `{"serviceName":"`...)
	dst = append(dst, r.Service...)
	dst = append(dst, `","nodeName":"`...)
	dst = append(dst, r.Node...)
	dst = append(dst, `","hostName":"`...)
	dst = append(dst, r.Host...)
	dst = append(dst, `","port":`...)
	dst = strconv.AppendInt(dst, int64(r.Port), 10)
	dst = append(dst, `,"timeOut":`...)
	dst = strconv.AppendInt(dst, int64(r.TimeOut), 10)
	dst = append(dst, `,"weight":`...)
	dst = strconv.AppendInt(dst, int64(max(r.Weight, 1)), 10)
	if len(r.Metadata) > 0 {
		dst = append(dst, `,"metadata":{`...)
		for i, k := range slices.Sorted(maps.Keys(r.Metadata)) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendQuote(dst, k)
			dst = append(dst, ':')
			dst = strconv.AppendQuote(dst, r.Metadata[k])
		}
		dst = append(dst, '}')
	}
	dst = append(dst, '}')
	return dst
}

// registerPath is the admin API's registration endpoint.
const registerPath = "/api/maxine/serviceops/register"

// fillRegister prepares req as a registration POST to addr.
func fillRegister(req *fasthttp.Request, addr string, body []byte) {
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI("http://" + addr + registerPath)
	req.Header.SetContentType("application/json")
	req.SetBodyRaw(body)
}

// Register sends one registration and returns an error unless it gets 200.
func (m *Maxine) Register(r Registration) error {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	fillRegister(req, m.AdminAddr, appendRegistration(nil, r))
	if err := m.admin.Do(req, resp); err != nil {
		return fmt.Errorf("cannot register %s/%s: %w", r.Service, r.Node, err)
	}
	if resp.StatusCode() != 200 {
		return fmt.Errorf("cannot register %s/%s: status %d: %s", r.Service, r.Node, resp.StatusCode(), resp.Body())
	}
	return nil
}

// RSS returns the resident set size and its peak (VmRSS, VmHWM) of the
// maxine process, from /proc/<pid>/status, in bytes.
func (m *Maxine) RSS() (rss, peak uint64, err error) {
	return procRSS(m.Pid())
}

func procRSS(pid int) (rss, peak uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, fmt.Errorf("cannot read RSS of pid %d: %w", pid, err)
	}
	return parseStatusKB(string(b), "VmRSS:") * 1024, parseStatusKB(string(b), "VmHWM:") * 1024, nil
}

// parseStatusKB returns the value in kB of a /proc/<pid>/status field.
func parseStatusKB(status, field string) uint64 {
	for line := range strings.SplitSeq(status, "\n") {
		rest, ok := strings.CutPrefix(line, field)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		v, _ := strconv.ParseUint(f[0], 10, 64)
		return v
	}
	return 0
}
