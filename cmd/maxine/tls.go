package main

import (
	"net"

	"github.com/rs/zerolog"

	"github.com/maxine-io/maxine/gateway"
)

// reloadOnHUP reloads the gateway's TLS certificate and key (SIGHUP). A
// pair that fails to load is logged and the previous one kept serving.
func reloadOnHUP(kp *gateway.KeyPair, log zerolog.Logger) {
	if kp == nil {
		log.Info().Msg("SIGHUP: no TLS listener, nothing to reload")
		return
	}
	if err := kp.Reload(); err != nil {
		log.Error().Err(err).Msg("SIGHUP: cannot reload the TLS certificate: still serving the previous one")
		return
	}
	log.Info().Str("subject", kp.Subject()).Time("notAfter", kp.NotAfter()).Msg("SIGHUP: TLS certificate reloaded")
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
