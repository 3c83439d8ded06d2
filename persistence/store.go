package persistence

import "errors"

// ErrStoreUnavailable is wrapped by every error of a shared state store
// (Redis, the shared file) that could not be reached or written: the
// change was not made anywhere, and the admin API answers 503 with the
// wrapped message, which names the store.
var ErrStoreUnavailable = errors.New("state store unavailable")
