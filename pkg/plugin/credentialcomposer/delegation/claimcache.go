package composer

import (
	"fmt"
	"sync"

	"github.com/agentid/agentid/pkg/claims"
	domain "github.com/agentid/agentid/pkg/delegation"
	"google.golang.org/protobuf/types/known/structpb"
)

// claimCacheSize bounds the encoded claims kept; when full the cache starts
// over, which costs one re-encoding per delegation in use.
const claimCacheSize = 4096

// claimCache keeps the protobuf encoding of each delegation's claims. A
// delegation's claims never change (delegations are revoked, never edited),
// and an agent fetches many tokens under one delegation, so encoding them
// once takes claim building off the signing path. Entries are keyed by the
// replica's record, so a record replaced on the stream is never served from
// an older one. The values are shared between responses and never mutated.
type claimCache struct {
	mu sync.RWMutex
	m  map[*domain.Delegation]map[string]*structpb.Value
}

func (c *claimCache) get(d *domain.Delegation) (map[string]*structpb.Value, error) {
	c.mu.RLock()
	values, ok := c.m[d]
	c.mu.RUnlock()
	if ok {
		return values, nil
	}
	added := claims.FromDelegation(d).Map()
	values = make(map[string]*structpb.Value, len(added))
	for k, v := range added {
		var err error
		if values[k], err = structpb.NewValue(v); err != nil {
			// Map returns only strings, lists of strings and objects.
			return nil, fmt.Errorf("composer: failed to encode claim %s: %w", k, err)
		}
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= claimCacheSize {
		c.m = make(map[*domain.Delegation]map[string]*structpb.Value)
	}
	c.m[d] = values
	c.mu.Unlock()
	return values, nil
}
