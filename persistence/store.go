package persistence

import "errors"

// ErrStoreUnavailable is wrapped by every error that a shared state store
// (Redis, a shared file) returns because the store cannot be reached or
// did not take the write. The admin API answers such a registration with
// 503; the change was not applied anywhere, and the client retries.
var ErrStoreUnavailable = errors.New("state store unavailable")
