package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/agentid/agentid/pkg/authserver/keyring"
	"github.com/agentid/agentid/pkg/server/config"
	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/store/boltstore"
	"github.com/agentid/agentid/pkg/store/pgstore"
)

// serverStore is what agentid-server needs of its store: the store itself
// and the OAuth signing keys (both backends implement both).
type serverStore interface {
	store.Store
	keyring.Store
}

// openStore opens the configured backend. The PostgreSQL connection
// string never reaches a log or an error: pgstore's errors say what is
// wrong without it.
func openStore(ctx context.Context, cfg *config.Config) (serverStore, error) {
	switch storeType(cfg) {
	case config.StorePostgres:
		pg := cfg.Postgres
		if pg == nil {
			return nil, errors.New("store type postgres without its settings")
		}
		st, err := pgstore.Open(ctx, pgstore.Config{ConnString: pg.ConnString, PasswordFile: pg.PasswordFile, MaxConns: pg.MaxConns})
		if err != nil {
			return nil, err
		}
		return st, nil
	case config.StoreBolt:
		st, err := boltstore.Open(cfg.StorePath, boltstore.Options{})
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	return nil, fmt.Errorf("unknown store type %q", cfg.StoreType)
}

// storeType names the configured backend (a Config built without one is
// bolt).
func storeType(cfg *config.Config) string {
	if cfg.StoreType == "" {
		return config.StoreBolt
	}
	return cfg.StoreType
}

// storeHealthInterval is how often the store is probed when nothing else
// reads it.
const storeHealthInterval = 5 * time.Second

// storeHealth probes the store (a read of its revision) and says when it
// stops or starts answering: the agentid_store_available gauge, one log line
// per transition (not one per failed request, which StoreError already
// logs) and /readyz. Requests do not wait for it: each fails closed by
// itself with UNAVAILABLE while the store is down.
type storeHealth struct {
	st  store.Store
	log logrus.FieldLogger
	up  prometheus.Gauge

	mu        sync.Mutex
	available bool
	since     time.Time
}

func newStoreHealth(st store.Store, log logrus.FieldLogger, reg prometheus.Registerer) (*storeHealth, error) {
	h := &storeHealth{st: st, log: log, available: true, since: time.Now(), up: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "agentid_store_available", Help: "1 while the store answers, 0 while it does not (requests fail closed with UNAVAILABLE).",
	})}
	h.up.Set(1)
	if err := reg.Register(h.up); err != nil {
		return nil, err
	}
	return h, nil
}

// probe reads the store once and records the outcome.
func (h *storeHealth) probe(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := h.st.Revision(pctx)
	if ctx.Err() != nil {
		return err // shutting down: not the store's fault
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err != nil && h.available:
		h.available, h.since = false, time.Now()
		h.up.Set(0)
		h.log.WithError(err).Error("Store unavailable: failing requests closed (UNAVAILABLE) until it answers again")
	case err == nil && !h.available:
		h.log.WithField("down_for", time.Since(h.since).Round(time.Millisecond).String()).Info("Store available again")
		h.available, h.since = true, time.Now()
		h.up.Set(1)
	}
	return err
}

// run probes every storeHealthInterval until ctx ends.
func (h *storeHealth) run(ctx context.Context) error {
	t := time.NewTicker(storeHealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = h.probe(ctx) // its outcome is the gauge, the readiness and the log line probe writes
		}
	}
}
