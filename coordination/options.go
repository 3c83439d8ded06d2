package coordination

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// DefaultPrefix is the key prefix when Options.Prefix is empty; it matches
// the default of MAXINE_REGISTRY_REDIS_KEY_PREFIX.
const DefaultPrefix = "maxine:registry"

// Defaults of Options.LeaseTTL and Options.RenewInterval.
const (
	DefaultLeaseTTL      = 10 * time.Second
	DefaultRenewInterval = 3 * time.Second
)

// minLeaseTTL bounds LeaseTTL from below: a shorter lease is lost to
// ordinary scheduling and network jitter.
const minLeaseTTL = 100 * time.Millisecond

// Options configure a Lease. Client and InstanceID are required; the zero
// value of every other field means its default.
type Options struct {
	// Client is the Redis connection (standalone or sentinel failover; the
	// lease, fence and caller keys of a fenced write must live on one node,
	// so a cluster client is not supported). Set ContextTimeoutEnabled on
	// it: then a renewal against a hung Redis gives up at its deadline
	// instead of after the client's ReadTimeout. Status and IsLeader are
	// correct either way (they check the local deadline themselves); only
	// the OnChange call is later.
	Client redis.UniversalClient
	// Prefix starts every key: <Prefix>:leader, <Prefix>:fence,
	// <Prefix>:members. Default DefaultPrefix.
	Prefix string
	// InstanceID names this instance in the lease and membership records.
	// It must be unique among the instances sharing Prefix.
	InstanceID string
	// AdminAddr and GatewayAddr are published in the lease and membership
	// records so that other instances can find the leader's admin API.
	AdminAddr, GatewayAddr string
	// LeaseTTL is how long an acquired or renewed lease lives in Redis
	// without another renewal. Default DefaultLeaseTTL.
	LeaseTTL time.Duration
	// RenewInterval is how often the leader renews, a follower tries to
	// acquire, and the membership record is refreshed. It must be less than
	// LeaseTTL/2 so that one failed renewal does not lose the lease.
	// Default DefaultRenewInterval.
	RenewInterval time.Duration
	// Logger receives leadership transitions (info) and Redis errors (warn).
	Logger zerolog.Logger
	// OnChange, when set, is called on the Run goroutine each time this
	// instance gains or loses the lease, or the leader it observes changes,
	// with the new Status (its Reason says why). It runs between renewals:
	// it must return quickly (hand the event to a channel or a logger) and
	// must not call Run.
	OnChange func(Status)
	// Now replaces time.Now in tests.
	Now func() time.Time
}

// withDefaults returns o with its zero values replaced by the defaults.
func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.RenewInterval == 0 {
		o.RenewInterval = DefaultRenewInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Validate reports the first setting that cannot work, naming it. Zero
// values stand for their defaults and are valid.
func (o Options) Validate() error {
	o = o.withDefaults()
	switch {
	case o.Client == nil:
		return errors.New("coordination: Options.Client is required")
	case strings.TrimSpace(o.InstanceID) == "":
		return errors.New("coordination: Options.InstanceID is required")
	case strings.TrimSpace(o.Prefix) != o.Prefix:
		return fmt.Errorf("coordination: Options.Prefix %q must not start or end with spaces", o.Prefix)
	case o.LeaseTTL < minLeaseTTL:
		return fmt.Errorf("coordination: lease TTL must be at least %s, got %s", minLeaseTTL, o.LeaseTTL)
	case o.RenewInterval < 0:
		return fmt.Errorf("coordination: renew interval must be positive, got %s", o.RenewInterval)
	case o.RenewInterval >= o.LeaseTTL/2:
		return fmt.Errorf("coordination: renew interval (%s) must be less than half the lease TTL (%s), so that one failed renewal does not lose the lease", o.RenewInterval, o.LeaseTTL)
	}
	return nil
}

// safetyMargin is how much earlier than the lease's expiry in Redis the
// leader steps down by its own clock: a tenth of the lease, at most one
// second. It covers clock-rate differences between this host and Redis's.
func (o Options) safetyMargin() time.Duration {
	return min(o.LeaseTTL/10, time.Second)
}
