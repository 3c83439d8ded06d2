package main

import (
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
