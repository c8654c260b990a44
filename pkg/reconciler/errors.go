package reconciler

import "errors"

var (
	// ErrInvalidAgent is wrapped by SetAgents' error when a declared agent
	// cannot be turned into a SPIRE entry; nothing is changed then, so a bad
	// configuration reload leaves the previous agents in place.
	ErrInvalidAgent = errors.New("reconciler: invalid agent")

	// ErrAgentsNotSet is returned by Reconcile before the first SetAgents.
	// Reconciling an unknown set as an empty one would delete every owned
	// entry, so a server that failed to load its configuration must not.
	ErrAgentsNotSet = errors.New("reconciler: agents not set")

	// ErrIncomplete is wrapped by Reconcile's error when the pass reached
	// SPIRE but some agents could not be synced or some undeclared owned
	// entries could not be deleted. The other agents were synced; each
	// failure is in its agent's SyncState.
	ErrIncomplete = errors.New("reconciler: pass incomplete")

	// ErrForeignEntry is in an agent's LastError when SPIRE holds an entry it
	// does not let the reconciler own (no prefix) with the agent's SPIFFE ID,
	// parent ID and selectors: SPIRE refuses a second such entry, and the
	// reconciler never touches entries it does not own, so an operator must
	// delete one of the two.
	ErrForeignEntry = errors.New("reconciler: a similar entry not owned by the reconciler exists")

	// ErrAlreadyRunning is returned by Run when another Run is in progress.
	ErrAlreadyRunning = errors.New("reconciler: already running")
)
