package observe

// ring is a fixed-size circular buffer that keeps the newest values. It is
// not safe for concurrent use; its owner holds a mutex around every call.
type ring[T any] struct {
	buf  []T
	next int  // slot the next value goes to
	full bool // every slot has been written at least once
}

func newRing[T any](size int) ring[T] {
	return ring[T]{buf: make([]T, size)}
}

func (r *ring[T]) add(v T) {
	r.buf[r.next] = v
	r.next++
	if r.next == len(r.buf) {
		r.next = 0
		r.full = true
	}
}

func (r *ring[T]) len() int {
	if r.full {
		return len(r.buf)
	}
	return r.next
}

// recent returns up to limit values, newest first; limit <= 0 means all.
func (r *ring[T]) recent(limit int) []T {
	n := r.len()
	if limit > 0 && limit < n {
		n = limit
	}
	out := make([]T, n)
	i := r.next
	for k := range out {
		i--
		if i < 0 {
			i = len(r.buf) - 1
		}
		out[k] = r.buf[i]
	}
	return out
}

func (r *ring[T]) clear() {
	clear(r.buf) // drop references so the garbage collector can take them
	r.next = 0
	r.full = false
}
