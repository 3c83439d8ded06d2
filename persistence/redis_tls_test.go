package persistence

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/maxine-io/maxine/internal/redistest"
	"github.com/maxine-io/maxine/registry"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into dir and returns their paths and a pool trusting it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "maxine test redis"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// rediss:// with an ACL user, a password and a DB number against a real
// TLS listener.
func TestRedisTLSWithACLUser(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	tlsPort := redistest.FreePort(t)
	srv := redistest.Start(t, "--tls-port", strconv.Itoa(tlsPort), "--tls-cert-file", certFile,
		"--tls-key-file", keyFile, "--tls-ca-cert-file", certFile, "--tls-auth-clients", "no")
	mustDo(t, srv, "ACL", "SETUSER", "maxine", "on", ">s3cret", "~*", "&*", "+@all")

	url := fmt.Sprintf("rediss://maxine:s3cret@127.0.0.1:%d/2", tlsPort)
	st := startStore(t, RedisOptions{URL: url, TLS: &tls.Config{RootCAs: pool}, InstanceID: "a"})
	ctx := context.Background()
	if _, err := st.Register(ctx, testReg("orders", "n1", 8081)); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.client.HExists(ctx, svcKey("orders"), "n1").Result(); err != nil || !ok {
		t.Fatalf("node not in DB 2 over TLS: %v, %v", ok, err)
	}
	if v := mustDo(t, srv, "EXISTS", svcKey("orders")); v != "0" {
		t.Fatal("the node was written to DB 0, not the URL's DB 2")
	}

	for _, bad := range []RedisOptions{
		{URL: fmt.Sprintf("rediss://maxine:wrong@127.0.0.1:%d/2", tlsPort), TLS: &tls.Config{RootCAs: pool}},
		{URL: url}, // the self-signed certificate is not trusted
	} {
		bad.Registry = registry.New(registry.Options{})
		c, err := NewRedisClient(bad)
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewRedis(bad, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Load(ctx); !errors.Is(err, ErrStoreUnavailable) {
			t.Errorf("Load with %s: %v; want ErrStoreUnavailable", redactURL(bad.URL), err)
		}
		c.Close()
	}
}
