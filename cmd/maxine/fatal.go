package main

import (
	"errors"
	"io"
	"strings"

	"github.com/rs/zerolog"

	"github.com/maxine-io/maxine/config"
	"github.com/maxine-io/maxine/observe"
)

// Exit codes of the server command.
const (
	exitFailed    = 1 // could not start or run: a port taken, the data dir held by another instance, a store unreachable
	exitBadConfig = 2 // bad configuration: a flag or environment value, wherever it is found
)

// configError marks an error as bad configuration (exit code 2).
type configError struct{ error }

func (e configError) Unwrap() error { return e.error }

// fatal reports a start-up or run error as one log line at level fatal, in
// the configured format (json or plain), on w, and returns the exit code:
// exitBadConfig for a configError, exitFailed otherwise.
func fatal(w io.Writer, format string, err error) int {
	f, _ := parseLogFormat(format)
	out := observe.NewLogOutput(w, nil, f == config.PlainLogs)
	log := zerolog.New(out).With().Timestamp().Logger()
	// WithLevel, not Fatal: zerolog's Fatal would exit before the caller's
	// deferred clean-up, and the caller chooses the exit code.
	log.WithLevel(zerolog.FatalLevel).Msg("maxine: " + err.Error())
	var ce configError
	if errors.As(err, &ce) {
		return exitBadConfig
	}
	return exitFailed
}

// logFormatOf finds the log format a command line asks for, for reporting
// an error met while parsing it: cur (the environment's, or the flags
// parsed before the error), unless --log-format appears in args.
func logFormatOf(args []string, cur string) string {
	for i, a := range args {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "log-format" {
			continue
		}
		if !hasVal && i+1 < len(args) {
			val = args[i+1]
		}
		if _, ok := parseLogFormat(val); ok {
			cur = val
		}
	}
	return cur
}
