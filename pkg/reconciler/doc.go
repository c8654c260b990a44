// Package reconciler keeps SPIRE's registration entries in line with the
// agents agentid-server declares, the way spire-controller-manager does for
// Kubernetes workloads.
//
// # What it owns
//
// Each declared agent gets one entry whose id is the configured prefix
// ("agentid-" by default) followed by a form of the agent's name and a hash
// of it, e.g. agentid-gdpr-compliance.267b944557717480. The id is a pure
// function of the name, so it survives restarts, and a second replica (or a
// retried pass) that tries to create an entry that is already there gets
// ALREADY_EXISTS for its own id and checks it instead of duplicating it.
//
// Every entry whose id starts with the prefix belongs to the reconciler:
// if no agent declares it, it is deleted; if it differs from its agent (a
// selector, a TTL, the SPIFFE ID, or a field somebody set by hand such as
// admin), it is rewritten. Entries without the prefix are read, never
// written, even when they collide with an agent's entry: that agent's state
// then says so (ErrForeignEntry) and an operator decides.
//
// # Declaring agents
//
//	rec, err := reconciler.New(reconciler.Config{
//		Client:     spireClient, // *spireapi.Client from spireapi.Dial
//		Log:        log,
//		Registerer: prometheus.DefaultRegisterer,
//	})
//	...
//	err = rec.SetAgents([]reconciler.Agent{{
//		Name:        "gdpr-compliance",
//		SPIFFEID:    spiffeid.RequireFromString("spiffe://example.org/agent/gdpr-compliance"),
//		ParentID:    spiffeid.RequireFromString("spiffe://example.org/spire/agent/k8s_psat/prod/node1"),
//		Selectors:   []spireapi.Selector{{Type: "aiagent", Value: "name:gdpr-compliance"}},
//		JWTSVIDTTL:  5 * time.Minute,
//	}})
//	...
//	go rec.Run(ctx)
//
// SetAgents takes the complete set and is all or nothing: one invalid agent
// and the previous set stays. Every agent needs a selector of the agent
// attestor's type (Config.SelectorType, "aiagent" by default), so that a
// process the attestor failed to recognise matches no agent entry and gets
// no agent identity. Until the first SetAgents the reconciler
// writes nothing: a server that failed to read its configuration must not
// delete every agent entry.
//
// # Passes
//
// Run reconciles at start, on every SetAgents or Trigger, and every Interval
// (10 s). A pass lists all entries, deletes stale owned ones first (so that a
// renamed agent's new entry is not refused as a duplicate of its old one),
// updates the ones that differ, and creates the missing ones, in batches. A
// pass that finds everything in place writes nothing.
//
// Failures are per agent: SPIRE refusing one entry marks that agent
// StateError with SPIRE's reason and the others are synced; Reconcile then
// returns an error wrapping ErrIncomplete. If SPIRE cannot be reached at all,
// every agent is marked StateError with the same reason, LastSynced keeping
// the last good time. The next pass retries everything.
//
// # Observing
//
// States (and State) give each agent's SyncState for AgentService; OnSync
// pushes each state as it is recorded. With a Registerer, the reconciler
// exports agentid_reconcile_runs_total{result}, agentid_agent_sync_state
// {agent,state} (one-hot), agentid_reconcile_entry_writes_total{op,code},
// agentid_reconcile_owned_entries and
// agentid_reconcile_last_success_timestamp_seconds.
package reconciler
