package registry

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// The metadata one node may pin is bounded in total, not only per entry:
// 32 entries of 1 KiB each passed before, 36 KB a node from anyone who can
// register.
func TestMetadataTotalBounded(t *testing.T) {
	reg := Registration{ServiceName: "s", NodeName: "n", HostName: "h", Weight: 1, TimeOut: 5, Metadata: map[string]string{}}
	for i := 0; len(reg.Metadata) < MaxMetadataKeys; i++ {
		reg.Metadata["k"+strconv.Itoa(i)] = strings.Repeat("v", MaxMetadataValLen)
	}
	err := reg.Validate()
	if err == nil || !IsValidationError(err) || !strings.Contains(err.Error(), "metadata") {
		t.Fatalf("32 x 1 KiB of metadata: Validate = %v", err)
	}
	reg.Metadata = map[string]string{}
	for i := 0; i < 4; i++ { // 4 x (2 + 1022) = MaxMetadataBytes
		reg.Metadata["k"+strconv.Itoa(i)] = strings.Repeat("v", MaxMetadataBytes/4-2)
	}
	if err := reg.Validate(); err != nil {
		t.Fatalf("metadata of exactly %d bytes: %v", MaxMetadataBytes, err)
	}
	reg.Metadata["x"] = ""
	if err := reg.Validate(); err == nil {
		t.Fatalf("metadata of %d bytes accepted", MaxMetadataBytes+1)
	}
}

// Services are bounded beside nodes: a new service past MaxServices is
// refused with ErrTooManyServices, nodes of existing services still
// register, and a service freed by its last node's removal frees its slot.
func TestMaxServices(t *testing.T) {
	r := New(Options{MaxServices: 2})
	reg := func(svc, node string) error {
		_, err := r.Register(Registration{ServiceName: svc, NodeName: node, HostName: "h", Weight: 1, TimeOut: 5})
		return err
	}
	if reg("a", "1") != nil || reg("b", "1") != nil {
		t.Fatal("two services refused")
	}
	if err := reg("c", "1"); !errors.Is(err, ErrTooManyServices) {
		t.Fatalf("third service: %v", err)
	}
	if r.Snapshot("c") != nil {
		t.Fatal("a refused service left a snapshot")
	}
	if err := reg("a", "2"); err != nil {
		t.Fatalf("a new node of an existing service: %v", err)
	}
	r.Deregister("b", "1")
	if err := reg("c", "1"); err != nil {
		t.Fatalf("after b emptied: %v", err)
	}
	if got := r.Services(); got != 2 {
		t.Fatalf("Services() = %d", got)
	}
}

// The defaults bound what anonymous registrations can pin (README,
// "Limits").
func TestDefaultLimits(t *testing.T) {
	r := New(Options{})
	if r.opts.MaxNodes != DefaultMaxNodes || r.opts.MaxServices != DefaultMaxServices ||
		DefaultMaxNodes > 200_000 || DefaultMaxServices > 50_000 {
		t.Fatalf("defaults: %d nodes, %d services", r.opts.MaxNodes, r.opts.MaxServices)
	}
}
