package persistence

import "github.com/redis/go-redis/v9"

// ScriptSource returns the Lua source of one of the store's scripts. A
// FencedFunc whose runner builds its own fenced script from a body (the
// coordination package's FencedScript prepends its fence prelude) uses it
// to turn the store's fenced scripts (reap, config) into its own.
func ScriptSource(s *redis.Script) (string, bool) {
	src, ok := scriptSources[s]
	return src, ok
}
