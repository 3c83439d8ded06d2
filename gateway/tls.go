package gateway

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// TLS on both sides of the gateway: the listener's certificate, reloaded
// without a restart (KeyPair), and the trust the gateway puts in https
// nodes (UpstreamTLSConfig; the per-node TLS client is forward.go's).

// KeyPair is a certificate and key loaded from files and reloadable while
// it is served: handshakes read the current pair with one atomic load
// (GetCertificate). Reload reads the files again (SIGHUP); ReloadIfChanged
// does so only when either file's size, modification time or inode moved
// (the polling of Watch). A pair that fails to load leaves the last good
// one served. Safe for concurrent use; must not be copied.
type KeyPair struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]

	mu    sync.Mutex // serializes reloads
	stamp [2]fileStamp
}

type fileStamp struct {
	size  int64
	mtime time.Time
	ino   uint64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{size: fi.Size(), mtime: fi.ModTime(), ino: inode(fi)}, nil
}

// inode is the file's inode where the platform has one: a file replaced
// by rename within the mtime granularity still looks changed.
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}

// LoadKeyPair loads certFile (PEM, the leaf first, then intermediates) and
// keyFile (PEM).
func LoadKeyPair(certFile, keyFile string) (*KeyPair, error) {
	k := &KeyPair{certFile: certFile, keyFile: keyFile}
	if err := k.Reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// Reload reads the files again and serves the pair from the next
// handshake on; on error the previous pair stays.
func (k *KeyPair) Reload() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reloadLocked()
}

func (k *KeyPair) reloadLocked() error {
	// Stamps first: a file replaced while it is read is seen as changed
	// at the next poll and read again.
	var st [2]fileStamp
	var err error
	for i, f := range []string{k.certFile, k.keyFile} {
		if st[i], err = stampOf(f); err != nil {
			return fmt.Errorf("cannot read TLS key pair: %w", err)
		}
	}
	pair, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return fmt.Errorf("cannot load TLS key pair %s, %s: %w", k.certFile, k.keyFile, err)
	}
	if pair.Leaf == nil && len(pair.Certificate) > 0 {
		pair.Leaf, _ = x509.ParseCertificate(pair.Certificate[0])
	}
	k.cur.Store(&pair)
	k.stamp = st
	return nil
}

// ReloadIfChanged reloads when either file changed since the last load
// (successful or not is judged by the stamps of the last good load: a
// pair that failed to load is tried again at every call until it loads).
func (k *KeyPair) ReloadIfChanged() (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, f := range []string{k.certFile, k.keyFile} {
		st, err := stampOf(f)
		if err != nil {
			return false, fmt.Errorf("cannot read TLS key pair: %w", err)
		}
		if st != k.stamp[i] {
			if err := k.reloadLocked(); err != nil {
				return false, err
			}
			return true, nil
		}
	}
	return false, nil
}

// Watch polls the files every interval until done is closed and reloads
// them when they change; log, when not nil, gets a line per reload and per
// failure (once per distinct error, not once per poll).
func (k *KeyPair) Watch(done <-chan struct{}, interval time.Duration, log *zerolog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		changed, err := k.ReloadIfChanged()
		switch {
		case err != nil && err.Error() != lastErr:
			lastErr = err.Error()
			if log != nil {
				log.Error().Err(err).Msg("TLS certificate changed on disk but cannot be loaded: still serving the previous one")
			}
		case changed:
			lastErr = ""
			if log != nil {
				log.Info().Str("certFile", k.certFile).Str("subject", k.Subject()).Time("notAfter", k.NotAfter()).Msg("TLS certificate reloaded")
			}
		}
	}
}

// GetCertificate is tls.Config.GetCertificate: the current pair.
func (k *KeyPair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return k.cur.Load(), nil
}

// Subject is the current certificate's subject, for logs.
func (k *KeyPair) Subject() string {
	if l := k.cur.Load().Leaf; l != nil {
		return l.Subject.String()
	}
	return ""
}

// NotAfter is the current certificate's expiry, for logs.
func (k *KeyPair) NotAfter() time.Time {
	if l := k.cur.Load().Leaf; l != nil {
		return l.NotAfter
	}
	return time.Time{}
}

// ServerTLSConfig is the gateway listener's TLS configuration: TLS 1.2 or
// later (Go's default cipher suites, which offer only AEAD suites with
// forward secrecy for 1.2), ALPN http/1.1 (the gateway speaks HTTP/1.1
// only: a client offering h2 is told so in the handshake), the
// certificate from k on every handshake.
func ServerTLSConfig(k *KeyPair) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"http/1.1"},
		GetCertificate: k.GetCertificate,
	}
}

// UpstreamTLSConfig is the TLS client configuration for https nodes with
// the PEM certificates of caFile trusted beside the system's roots
// (Options.TLSConfig). Certificates are always verified.
func UpstreamTLSConfig(caFile string) (*tls.Config, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read the CA bundle: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("no PEM certificate in the CA bundle %s", caFile)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, nil
}

// TLSListener accepts TLS connections on ln with cfg, served through
// Listener's head checks (on the decrypted bytes). Requests over it are
// seen as TLS by the server (X-Forwarded-Proto https). A cleartext HTTP
// request to it is answered with a plain 400 saying so, as net/http does,
// rather than a TLS alert the client cannot read.
func TLSListener(ln net.Listener, cfg *tls.Config) net.Listener {
	return Listener(tls.NewListener(ln, cfg))
}

// tlsHeadConn is a headConn over TLS: fasthttp recognizes TLS
// connections by these two methods.
type tlsHeadConn struct {
	*headConn
	tc *tls.Conn
}

func (c *tlsHeadConn) Handshake() error                     { return c.tc.Handshake() }
func (c *tlsHeadConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

func (c *tlsHeadConn) Read(p []byte) (int, error) {
	n, err := c.headConn.Read(p)
	if err != nil {
		var rhe tls.RecordHeaderError
		if errors.As(err, &rhe) && rhe.Conn != nil && looksLikeHTTP(rhe.RecordHeader[:]) {
			rhe.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(rhe.Conn, plainToTLS)
			rhe.Conn.Close()
		}
	}
	return n, err
}

const plainToTLS = "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"

// looksLikeHTTP reports whether the first five bytes of a would-be TLS
// record are the start of an HTTP request.
func looksLikeHTTP(h []byte) bool {
	for _, m := range [...]string{"GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH", "CONNE", "TRACE"} {
		if bytes.Equal(h, []byte(m)) {
			return true
		}
	}
	return false
}
