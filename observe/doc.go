// Package observe holds what Maxine tells its operators about itself:
// audit events (a bounded ring plus an append-only JSONL file), alerts (a
// ring plus an optional webhook), a ring of recent request traces for the
// gateway and admin API, and the zerolog logger with its ring of recent
// lines and its run-time switch between JSON and plain output.
//
// Nothing here may slow a request down. Record, Raise and RecordTrace take
// a short mutex and never wait for a disk or the network: file writes and
// webhook deliveries run in goroutines owned by the caller through
// Run(done), and work that does not fit in their queues is dropped and
// counted rather than queued without bound.
package observe
