package main

import (
	"sync"
	"time"

	"github.com/maxine-io/maxine/registry"
)

// localStoreHealth is the state file's health in local mode, for the
// health endpoint's store component and the loss-window log lines. While
// writes fail, registrations keep working from memory; everything changed
// since the last good write (unsavedSince) is lost if the process stops.
// Safe for concurrent use.
type localStoreHealth struct {
	mu        sync.Mutex
	path      string
	lastWrite time.Time // last successful write; the start time before any
	failing   bool
	failures  int    // consecutive failed writes
	lastErr   string // of the last failed write
}

func newLocalStoreHealth(path string, start time.Time) *localStoreHealth {
	return &localStoreHealth{path: path, lastWrite: start}
}

// failed records a failed write. It returns the number of consecutive
// failures (1 for the first of an outage) and the start of the loss
// window.
func (h *localStoreHealth) failed(err error) (failures int, unsavedSince time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failing = true
	h.failures++
	h.lastErr = err.Error()
	return h.failures, h.lastWrite
}

// wrote records a successful write at now. When it ends an outage it
// returns true and the loss window that just closed.
func (h *localStoreHealth) wrote(now time.Time) (recovered bool, unsavedSince time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	recovered, unsavedSince = h.failing, h.lastWrite
	h.failing, h.failures, h.lastErr, h.lastWrite = false, 0, "", now
	return recovered, unsavedSince
}

// component is the health endpoint's "store" component.
func (h *localStoreHealth) component() map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	details := map[string]any{"mode": "local", "file": h.path, "lastWrite": h.lastWrite.UTC().Format(time.RFC3339Nano)}
	if !h.failing {
		return map[string]any{"status": "UP", "details": details}
	}
	details["error"] = h.lastErr
	details["failedWrites"] = h.failures
	details["unsavedSince"] = h.lastWrite.UTC().Format(time.RFC3339Nano)
	details["note"] = "registrations are served from memory; changes since unsavedSince are lost if the process stops"
	return map[string]any{"status": "DOWN", "details": details}
}

// healthComponents is the health endpoint's components: the state store
// and the registry's fill against its limits. In local mode the store is
// the state file (local); in the shared modes it is whether the shared
// store answers (storeUp), which also makes the instance DOWN (503, see
// lifecycle.ready): a clustered instance cut off from its store must not
// take registrations it cannot share.
func healthComponents(local *localStoreHealth, storeUp func() bool, o *options, reg *registry.Registry) map[string]any {
	var store map[string]any
	switch {
	case local != nil:
		store = local.component()
	case storeUp != nil:
		status := "UP"
		if !storeUp() {
			status = "DOWN"
		}
		store = map[string]any{"status": status, "details": map[string]any{"mode": o.stateMode}}
	default:
		store = map[string]any{"status": "UNKNOWN", "details": map[string]any{"mode": o.stateMode}}
	}
	status := "UP"
	if reg.Len() >= o.maxNodes || reg.Services() >= o.maxServices {
		status = "FULL"
	}
	return map[string]any{
		"store": store,
		"registry": map[string]any{"status": status, "details": map[string]any{
			"nodes": reg.Len(), "maxNodes": o.maxNodes, "services": reg.Services(), "maxServices": o.maxServices,
		}},
	}
}
