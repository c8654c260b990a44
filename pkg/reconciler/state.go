package reconciler

import "time"

// State is where an agent's SPIRE entry stands.
type State int

const (
	// StatePending is the zero value: the agent was declared (or changed)
	// and no pass has confirmed its entry yet. Nothing may be assumed about
	// the entry in SPIRE.
	StatePending State = iota
	// StateSynced means the last pass found or made the entry exactly as
	// declared.
	StateSynced
	// StateError means the last pass could not make the entry as declared;
	// SyncState.LastError says why. The entry in SPIRE may be missing or
	// stale.
	StateError
)

var stateNames = [...]string{StatePending: "pending", StateSynced: "synced", StateError: "error"}

// String returns "pending", "synced" or "error", the names used in metrics
// and by AgentService.
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return "unknown"
	}
	return stateNames[s]
}

// SyncState is the sync state of one declared agent, as AgentService shows it.
type SyncState struct {
	// State is the outcome of the last pass that covered the agent.
	State State
	// EntryID is the id of the agent's SPIRE entry. It is derived from the
	// agent's name, so it is known (and stable) before the entry exists.
	EntryID string
	// LastSynced is when a pass last confirmed the entry as declared; the
	// zero time if never. It is kept through later errors, so it shows how
	// stale the entry may be.
	LastSynced time.Time
	// LastAttempt is when a pass last covered the agent.
	LastAttempt time.Time
	// LastError is why the last pass failed for the agent; empty unless
	// State is StateError.
	LastError string
}
