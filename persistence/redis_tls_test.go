package persistence

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/maxine-io/maxine/internal/redistest"
	"github.com/maxine-io/maxine/internal/testcert"
	"github.com/maxine-io/maxine/registry"
)

// rediss:// with an ACL user, a password and a DB number against a real
// TLS listener.
func TestRedisTLSWithACLUser(t *testing.T) {
	ca, dir := testcert.NewCA(t), t.TempDir()
	certFile, keyFile := ca.WritePair(t, dir, "maxine test redis")
	pool := ca.Pool
	tlsPort := redistest.FreePort(t)
	srv := redistest.Start(t, "--tls-port", strconv.Itoa(tlsPort), "--tls-cert-file", certFile,
		"--tls-key-file", keyFile, "--tls-ca-cert-file", ca.WriteCA(t, dir), "--tls-auth-clients", "no")
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
