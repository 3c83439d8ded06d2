package lb

import (
	"testing"

	"github.com/maxine-io/maxine/config"
)

func TestRendezvousStability(t *testing.T) { checkStability(t, config.RendezvousHashing) }

func TestRendezvousSameKey(t *testing.T) {
	names, parents := expand(1, 2, 3, 4)
	a, b := NewTable(names, parents, nil), NewTable(names, parents, nil)
	for _, k := range testKeys(1000) {
		if x, y := a.Pick(config.RendezvousHashing, k, nil), b.Pick(config.RendezvousHashing, k, nil); x != y {
			t.Fatalf("key %x: %d and %d", k, x, y)
		}
	}
}
