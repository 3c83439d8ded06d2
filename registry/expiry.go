package registry

// expiryHeap is an indexed min-heap of parents by deadline: one structure for
// the whole registry, O(log n) per heartbeat, no timer or goroutine per node.
// It is guarded by Registry.mu.
type expiryHeap []*parent

func (h expiryHeap) peek() *parent {
	if len(h) == 0 {
		return nil
	}
	return h[0]
}

func (h *expiryHeap) push(p *parent, deadline int64) {
	p.deadline = deadline
	p.heapIdx = len(*h)
	*h = append(*h, p)
	h.up(p.heapIdx)
}

func (h *expiryHeap) update(p *parent, deadline int64) {
	old := p.deadline
	p.deadline = deadline
	if deadline < old {
		h.up(p.heapIdx)
	} else {
		h.down(p.heapIdx)
	}
}

func (h *expiryHeap) remove(p *parent) {
	i := p.heapIdx
	if i < 0 {
		return
	}
	last := len(*h) - 1
	if i != last {
		h.swap(i, last)
	}
	(*h)[last] = nil
	*h = (*h)[:last]
	p.heapIdx = -1
	if i != last {
		h.down(i)
		h.up(i)
	}
}

func (h expiryHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}

func (h expiryHeap) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if h[parent].deadline <= h[i].deadline {
			return
		}
		h.swap(i, parent)
		i = parent
	}
}

func (h expiryHeap) down(i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h[r].deadline < h[l].deadline {
			m = r
		}
		if h[i].deadline <= h[m].deadline {
			return
		}
		h.swap(i, m)
		i = m
	}
}
