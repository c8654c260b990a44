package reconciler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentid/agentid/pkg/spireapi"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
)

// Defaults for Config.
const (
	// DefaultPrefix marks the entries the reconciler owns.
	DefaultPrefix = "agentid-"
	// DefaultSelectorType is the agent attestor's plugin name, and so its
	// selector type (WorkloadAttestor "aiagent" → aiagent:name:…).
	DefaultSelectorType = "aiagent"
	// DefaultInterval is how often a pass runs without a trigger, as
	// spire-controller-manager: it undoes manual edits of owned entries and
	// retries failures.
	DefaultInterval = 10 * time.Second
)

// Log field names.
const (
	logAgent    = "agent"
	logEntryID  = "entry_id"
	logSPIFFEID = "spiffe_id"
	logCode     = "code"
)

// Config configures a Reconciler.
type Config struct {
	// Client reaches SPIRE's entry API. Required.
	Client spireapi.EntryClient
	// Prefix starts the id of every entry the reconciler creates, and marks
	// the entries it owns: owned entries no agent declares are deleted,
	// entries without the prefix are never touched. Two reconcilers (two
	// agentid deployments) on one SPIRE server need different prefixes.
	// SPIRE's id charset [A-Za-z0-9._-], at most 190 bytes. Default
	// DefaultPrefix.
	Prefix string
	// SelectorType is the agent attestor's selector type; every agent must
	// have a selector of this type (an attestor failure then
	// yields no identity). Default DefaultSelectorType.
	SelectorType string
	// Interval between passes when nothing triggers one. Default
	// DefaultInterval.
	Interval time.Duration
	// Clock is the time source. Default: the system clock.
	Clock Clock
	// Log receives one line per entry written and per failure. Default:
	// silent.
	Log logrus.FieldLogger
	// OnSync, when set, is called with an agent's state each time it is
	// recorded: pending when SetAgents declares or changes the agent, and
	// after every pass. Calls never overlap and come in the order the states
	// were recorded. It must not call SetAgents or Reconcile. It is not called for
	// agents that are no longer declared.
	OnSync func(name string, st SyncState)
	// Registerer, when set, receives the reconciler's Prometheus collectors
	// (agentid_reconcile_runs_total{result},
	// agentid_reconcile_entry_writes_total{op,code},
	// agentid_agent_sync_state{agent,state},
	// agentid_reconcile_owned_entries,
	// agentid_reconcile_last_success_timestamp_seconds).
	Registerer prometheus.Registerer
}

// Reconciler keeps SPIRE's registration entries in line with the declared
// agents. It is safe for concurrent use.
type Reconciler struct {
	client       spireapi.EntryClient
	prefix       string
	selectorType string
	interval     time.Duration
	clock        Clock
	log          logrus.FieldLogger
	onSync       func(string, SyncState)
	metrics      *metrics

	trigger chan struct{}
	running atomic.Bool
	passMu  sync.Mutex // one pass at a time
	emitMu  sync.Mutex // state changes and their OnSync calls, in order

	mu        sync.Mutex
	agentsSet bool
	desired   map[string]spireapi.Entry // by agent name
	states    map[string]SyncState
}

// New validates config, fills in its defaults, and returns a Reconciler with
// no agents set: it touches nothing in SPIRE until the first SetAgents.
func New(config Config) (*Reconciler, error) {
	if config.Client == nil {
		return nil, errors.New("reconciler: client is required")
	}
	if config.Prefix == "" {
		config.Prefix = DefaultPrefix
	}
	if len(config.Prefix) > maxPrefixLen {
		return nil, fmt.Errorf("reconciler: prefix is %d bytes, more than %d", len(config.Prefix), maxPrefixLen)
	}
	for _, r := range config.Prefix {
		if !validEntryIDChar(r) {
			return nil, fmt.Errorf("reconciler: prefix %q has characters SPIRE refuses in entry ids (allowed: A-Z a-z 0-9 . _ -)", config.Prefix)
		}
	}
	if config.SelectorType == "" {
		config.SelectorType = DefaultSelectorType
	}
	if strings.Contains(config.SelectorType, ":") {
		return nil, fmt.Errorf("reconciler: selector type %q contains ':'", config.SelectorType)
	}
	switch {
	case config.Interval < 0:
		return nil, fmt.Errorf("reconciler: interval %s is negative", config.Interval)
	case config.Interval == 0:
		config.Interval = DefaultInterval
	}
	if config.Clock == nil {
		config.Clock = realClock{}
	}
	if config.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		config.Log = l
	}
	m, err := newMetrics(config.Registerer)
	if err != nil {
		return nil, err
	}
	return &Reconciler{
		client:       config.Client,
		prefix:       config.Prefix,
		selectorType: config.SelectorType,
		interval:     config.Interval,
		clock:        config.Clock,
		log:          config.Log,
		onSync:       config.OnSync,
		metrics:      m,
		trigger:      make(chan struct{}, 1),
		states:       make(map[string]SyncState),
	}, nil
}

// SetAgents declares the complete set of agents and triggers a pass. If any
// agent is invalid it returns an error wrapping ErrInvalidAgent and changes
// nothing. An empty set is a valid declaration: every owned entry is then
// deleted.
func (r *Reconciler) SetAgents(agents []Agent) error {
	desired, err := buildDesired(r.prefix, r.selectorType, agents)
	if err != nil {
		return err
	}

	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	r.mu.Lock()
	var changed []string
	for name, want := range desired {
		if prev, ok := r.desired[name]; ok && r.agentsSet && sameEntry(want, prev) {
			continue
		}
		st := r.states[name]
		st.State = StatePending
		st.EntryID = want.ID
		st.LastError = ""
		r.states[name] = st
		r.metrics.setState(name, StatePending)
		changed = append(changed, name)
	}
	for name := range r.states {
		if _, ok := desired[name]; !ok {
			delete(r.states, name)
			r.metrics.forget(name)
		}
	}
	r.desired = desired
	r.agentsSet = true
	emit := r.snapshotLocked(changed)
	r.mu.Unlock()
	r.emit(emit)

	r.Trigger()
	return nil
}

// Trigger asks Run for a pass now. It never blocks; triggers that arrive
// while one is pending are merged.
func (r *Reconciler) Trigger() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// States returns a copy of every declared agent's sync state, by name.
func (r *Reconciler) States() map[string]SyncState {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]SyncState, len(r.states))
	for name, st := range r.states {
		out[name] = st
	}
	return out
}

// State returns one agent's sync state, and false if no such agent is
// declared.
func (r *Reconciler) State(name string) (SyncState, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.states[name]
	return st, ok
}

// Run reconciles until ctx is done: once at start (if agents are set), on
// every SetAgents or Trigger, and every Interval. A failed pass is logged
// and retried on the next occasion. It returns nil when ctx is done, and
// ErrAlreadyRunning if another Run is in progress.
func (r *Reconciler) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer r.running.Store(false)
	for {
		// This pass covers every trigger that came before it (it reads the
		// agents after this point), so drop a pending one rather than run a
		// second, identical pass right after.
		select {
		case <-r.trigger:
		default:
		}
		err := r.Reconcile(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrAgentsNotSet):
			// Wait for the configuration.
		case err != nil:
			r.log.WithError(err).Warn("Reconciliation pass failed")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.trigger:
		case <-r.clock.After(r.interval):
		}
	}
}

// outcome is what a pass found for one agent; err nil means synced.
type outcome struct {
	err error
}

// Reconcile runs one pass: list every entry, then delete owned entries no
// agent declares, update owned entries that differ from their agent, and
// create missing ones. Entries without the prefix are read, never written.
//
// It returns nil when every agent is synced; an error wrapping ErrIncomplete
// when SPIRE answered but some agents or deletions failed (each agent's
// reason is in its SyncState); ErrAgentsNotSet before the first SetAgents;
// and the list error when SPIRE could not be read, every agent then being in
// StateError.
func (r *Reconciler) Reconcile(ctx context.Context) error {
	r.passMu.Lock()
	defer r.passMu.Unlock()

	r.mu.Lock()
	if !r.agentsSet {
		r.mu.Unlock()
		return ErrAgentsNotSet
	}
	desired := make(map[string]spireapi.Entry, len(r.desired))
	for name, e := range r.desired {
		desired[name] = e
	}
	r.mu.Unlock()
	names := sortedKeys(desired)
	now := r.clock.Now()

	entries, err := r.client.ListEntries(ctx)
	if err != nil {
		err = fmt.Errorf("reconciler: failed to list entries: %w", err)
		outcomes := make(map[string]outcome, len(names))
		for _, name := range names {
			outcomes[name] = outcome{err: err}
		}
		r.record(desired, outcomes, now)
		r.metrics.runs.WithLabelValues(resultError).Inc()
		return err
	}

	owned := make(map[string]spireapi.Entry)
	for _, e := range entries {
		if strings.HasPrefix(e.ID, r.prefix) {
			owned[e.ID] = e
		}
	}
	r.metrics.ownedCount.Set(float64(len(owned)))

	outcomes := make(map[string]outcome, len(names))
	var toCreate, toUpdate []string // agent names
	for _, name := range names {
		want := desired[name]
		have, ok := owned[want.ID]
		delete(owned, want.ID)
		switch {
		case !ok:
			toCreate = append(toCreate, name)
		case !sameEntry(want, have):
			toUpdate = append(toUpdate, name)
		default:
			outcomes[name] = outcome{}
		}
	}

	// Delete first: an agent renamed without other change gets a new entry
	// id, and SPIRE refuses the new entry while the old, similar one exists.
	failedDeletes := r.deleteStale(ctx, sortedKeys(owned))
	r.update(ctx, desired, toUpdate, outcomes)
	recheck := r.create(ctx, desired, toCreate, outcomes)
	r.update(ctx, desired, recheck, outcomes)

	r.record(desired, outcomes, now)

	failed := 0
	for _, o := range outcomes {
		if o.err != nil {
			failed++
		}
	}
	if failed > 0 || failedDeletes > 0 {
		r.metrics.runs.WithLabelValues(resultIncomplete).Inc()
		return fmt.Errorf("%w: %d of %d agents not synced, %d undeclared owned entries not deleted", ErrIncomplete, failed, len(names), failedDeletes)
	}
	r.metrics.runs.WithLabelValues(resultSuccess).Inc()
	r.metrics.lastSuccess.Set(float64(now.Unix()))
	return nil
}

// deleteStale deletes owned entries no agent declares and returns how many
// could not be deleted. An entry already gone (NOT_FOUND) counts as deleted.
func (r *Reconciler) deleteStale(ctx context.Context, ids []string) int {
	if len(ids) == 0 {
		return 0
	}
	sts, err := r.client.DeleteEntries(ctx, ids)
	failed := 0
	for i, id := range ids {
		log := r.log.WithField(logEntryID, id)
		st, callErr := statusAt(sts, i, err)
		if callErr != nil {
			failed++
			log.WithError(callErr).Warn("Failed to delete undeclared entry")
			continue
		}
		r.metrics.writes.WithLabelValues("delete", st.Code.String()).Inc()
		switch st.Code {
		case codes.OK, codes.NotFound:
			log.Info("Deleted undeclared entry")
		default:
			failed++
			log.WithField(logCode, st.Code).WithError(st.Err()).Warn("Failed to delete undeclared entry")
		}
	}
	return failed
}

// update writes the desired entries of the named agents over the existing
// ones.
func (r *Reconciler) update(ctx context.Context, desired map[string]spireapi.Entry, names []string, outcomes map[string]outcome) {
	if len(names) == 0 {
		return
	}
	entries := make([]spireapi.Entry, 0, len(names))
	for _, name := range names {
		entries = append(entries, desired[name])
	}
	sts, err := r.client.UpdateEntries(ctx, entries)
	for i, name := range names {
		log := r.log.WithFields(logrus.Fields{logAgent: name, logEntryID: entries[i].ID})
		st, callErr := statusAt(sts, i, err)
		if callErr != nil {
			outcomes[name] = outcome{err: fmt.Errorf("reconciler: failed to update entry: %w", callErr)}
			log.WithError(callErr).Warn("Failed to update entry")
			continue
		}
		r.metrics.writes.WithLabelValues("update", st.Code.String()).Inc()
		if st.Code != codes.OK {
			outcomes[name] = outcome{err: fmt.Errorf("reconciler: failed to update entry: %w", st.Err())}
			log.WithField(logCode, st.Code).WithError(st.Err()).Warn("Failed to update entry")
			continue
		}
		outcomes[name] = outcome{}
		log.Info("Updated entry")
	}
}

// create creates the entries of the named agents. It returns the agents whose
// create found their own entry already there (created since the list, by
// another replica) but different: those need an update.
func (r *Reconciler) create(ctx context.Context, desired map[string]spireapi.Entry, names []string, outcomes map[string]outcome) (recheck []string) {
	if len(names) == 0 {
		return nil
	}
	entries := make([]spireapi.Entry, 0, len(names))
	for _, name := range names {
		entries = append(entries, desired[name])
	}
	sts, err := r.client.CreateEntries(ctx, entries)
	for i, name := range names {
		want := entries[i]
		log := r.log.WithFields(logrus.Fields{logAgent: name, logEntryID: want.ID, logSPIFFEID: want.SPIFFEID})
		st, callErr := statusAt(sts, i, err)
		if callErr != nil {
			outcomes[name] = outcome{err: fmt.Errorf("reconciler: failed to create entry: %w", callErr)}
			log.WithError(callErr).Warn("Failed to create entry")
			continue
		}
		r.metrics.writes.WithLabelValues("create", st.Code.String()).Inc()
		switch {
		case st.Code == codes.OK:
			outcomes[name] = outcome{}
			log.Info("Created entry")
		case st.Code == codes.AlreadyExists && st.Entry != nil && st.Entry.ID == want.ID:
			if sameEntry(want, *st.Entry) {
				outcomes[name] = outcome{}
			} else {
				recheck = append(recheck, name)
			}
		case st.Code == codes.AlreadyExists && st.Entry != nil && !strings.HasPrefix(st.Entry.ID, r.prefix):
			outcomes[name] = outcome{err: fmt.Errorf("%w: entry %q", ErrForeignEntry, st.Entry.ID)}
			log.WithField("conflicting_entry_id", st.Entry.ID).Warn("Entry not created: a similar entry not owned by agentid exists")
		default:
			outcomes[name] = outcome{err: fmt.Errorf("reconciler: failed to create entry: %w", st.Err())}
			log.WithField(logCode, st.Code).WithError(st.Err()).Warn("Failed to create entry")
		}
	}
	return recheck
}

// statusAt returns the i-th status of a batch call, or the call's error for
// items the call did not answer.
func statusAt(sts []spireapi.Status, i int, err error) (spireapi.Status, error) {
	if i < len(sts) {
		return sts[i], nil
	}
	if err == nil {
		err = fmt.Errorf("%w: no status for item %d", spireapi.ErrMalformedResponse, i)
	}
	return spireapi.Status{}, err
}

// record stores the pass's outcomes for agents still declared as they were
// when the pass started; an agent changed meanwhile stays pending, and the
// pass SetAgents triggered will cover it.
func (r *Reconciler) record(desired map[string]spireapi.Entry, outcomes map[string]outcome, now time.Time) {
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	r.mu.Lock()
	var names []string
	for _, name := range sortedKeys(outcomes) {
		cur, ok := r.desired[name]
		if !ok || !sameEntry(cur, desired[name]) {
			continue
		}
		st := r.states[name]
		st.EntryID = cur.ID
		st.LastAttempt = now
		if err := outcomes[name].err; err != nil {
			st.State = StateError
			st.LastError = err.Error()
		} else {
			st.State = StateSynced
			st.LastSynced = now
			st.LastError = ""
		}
		r.states[name] = st
		r.metrics.setState(name, st.State)
		names = append(names, name)
	}
	emit := r.snapshotLocked(names)
	r.mu.Unlock()
	r.emit(emit)
}

type namedState struct {
	name  string
	state SyncState
}

func (r *Reconciler) snapshotLocked(names []string) []namedState {
	if r.onSync == nil {
		return nil
	}
	slices.Sort(names)
	out := make([]namedState, 0, len(names))
	for _, name := range names {
		out = append(out, namedState{name: name, state: r.states[name]})
	}
	return out
}

// emit calls OnSync; the caller holds emitMu, not mu.
func (r *Reconciler) emit(states []namedState) {
	for _, s := range states {
		r.onSync(s.name, s.state)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
