package main

import (
	"fmt"
	"net"

	"github.com/rs/zerolog"

	"github.com/maxine-io/maxine/gateway"
)

// namedKeyPair is a TLS listener's certificate (nil: no such listener).
type namedKeyPair struct {
	listener string // "gateway", "admin"
	kp       *gateway.KeyPair
}

// reloadOnHUP reloads the TLS listeners' certificates and keys (SIGHUP).
// A pair that fails to load is logged and the previous one kept serving.
func reloadOnHUP(log zerolog.Logger, pairs ...namedKeyPair) {
	reloaded := false
	for _, p := range pairs {
		if p.kp == nil {
			continue
		}
		reloaded = true
		if err := p.kp.Reload(); err != nil {
			log.Error().Err(err).Str("listener", p.listener).Msg("SIGHUP: cannot reload the TLS certificate: still serving the previous one")
			continue
		}
		log.Info().Str("listener", p.listener).Str("subject", p.kp.Subject()).Time("notAfter", p.kp.NotAfter()).Msg("SIGHUP: TLS certificate reloaded")
	}
	if !reloaded {
		log.Info().Msg("SIGHUP: no TLS listener, nothing to reload")
	}
}

// listenTLS loads a TLS listener's certificate and key and listens on
// addr; nothing when addr is empty. env and flag name the settings in
// errors: MAXINE_<env>_TLS_ADDR, --<flag>-tls-addr. A pair that does not
// load is a configuration error (exit 2).
func listenTLS(addr, certFile, keyFile, env, flag string) (net.Listener, *gateway.KeyPair, error) {
	if addr == "" {
		return nil, nil, nil
	}
	kp, err := gateway.LoadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, configError{fmt.Errorf("MAXINE_%s_TLS_CERT_FILE / MAXINE_%s_TLS_KEY_FILE: %w", env, env, err)}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("MAXINE_%s_TLS_ADDR (--%s-tls-addr) %s: %w", env, flag, addr, err)
	}
	return ln, kp, nil
}

// ownListeners are the addresses registrations must not point at.
func ownListeners(lns ...net.Listener) []string {
	var out []string
	for _, ln := range lns {
		if ln != nil {
			out = append(out, ln.Addr().String())
		}
	}
	return out
}
