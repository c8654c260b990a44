package composer

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentid/agentid/pkg/audit"
	auditv1 "github.com/agentid/agentid/proto/agentid/audit/v1"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Limits of RecordTokenIssuance, enforced by agentid-server and defined in
// pkg/audit. The composer checks a token's audiences against them before
// issuing, so that the server never has reason to refuse a record of a
// token that exists.
const (
	maxAuditBatch       = audit.MaxIssuanceBatch
	maxAuditAudiences   = audit.MaxIssuanceAudiences
	maxAuditAudienceLen = audit.MaxIssuanceAudienceLength
)

// errAuditStopped is returned for an issuance after the sender stopped
// (plugin closing or reconfigured).
var errAuditStopped = errors.New("composer: audit sender stopped")

// auditor reports issuances to agentid-server in the background: compose
// enqueues without blocking, one goroutine sends batches of up to
// maxAuditBatch and retries a failed batch until it is accepted. While it
// retries the queue fills, and a full queue refuses new tokens: no token is
// issued that the audit log cannot learn about.
type auditor struct {
	client auditv1.AuditServiceClient
	log    hclog.Logger
	tuning tuning
	// lost counts the records never delivered (the plugin's counter, so
	// that it outlives this sender).
	lost *atomic.Uint64

	mu     sync.RWMutex // guards closed against enqueue
	closed bool
	queue  chan *auditv1.TokenIssuance
	stopCh chan struct{}
	done   chan struct{}
	// ctx ends the sender; cancelled flushTimeout after stop.
	ctx    context.Context
	cancel context.CancelFunc
}

func newAuditor(client auditv1.AuditServiceClient, size int, log hclog.Logger, t tuning, lost *atomic.Uint64) *auditor {
	ctx, cancel := context.WithCancel(context.Background())
	a := &auditor{
		client: client, log: log, tuning: t, lost: lost,
		queue:  make(chan *auditv1.TokenIssuance, size),
		stopCh: make(chan struct{}),
		done:   make(chan struct{}),
		ctx:    ctx, cancel: cancel,
	}
	go a.run()
	return a
}

// enqueue queues one record without waiting.
func (a *auditor) enqueue(rec *auditv1.TokenIssuance) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.closed {
		return errAuditStopped
	}
	select {
	case a.queue <- rec:
		return nil
	default:
		return ErrAuditQueueFull
	}
}

// depth is the number of records waiting in the queue (not counting the
// batch being sent).
func (a *auditor) depth() int { return len(a.queue) }

// stop refuses new records, sends those queued for up to flushTimeout, and
// logs how many could not be sent.
func (a *auditor) stop() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		<-a.done
		return
	}
	a.closed = true
	a.mu.Unlock()
	close(a.stopCh)
	timer := time.AfterFunc(a.tuning.flushTimeout, a.cancel)
	<-a.done
	timer.Stop()
	a.cancel()
}

func (a *auditor) run() {
	defer close(a.done)
	lost := 0
	for {
		select {
		case rec := <-a.queue:
			lost += a.count(a.send(a.collect(rec)))
		case <-a.stopCh:
			// closed is set: nothing new arrives, drain what is queued.
			for len(a.queue) > 0 {
				lost += a.count(a.send(a.collect(<-a.queue)))
			}
			if lost > 0 {
				a.log.Error("Token issuances were not reported to agentid-server", logKeyRecords, lost)
			}
			return
		}
	}
}

// count adds n undelivered records to the plugin's counter and returns n.
func (a *auditor) count(n int) int {
	if n > 0 && a.lost != nil {
		a.lost.Add(uint64(n))
	}
	return n
}

// collect makes a batch of first and what arrives within the linger time
// (or is already queued), up to maxAuditBatch. It never waits once the
// sender is stopping.
func (a *auditor) collect(first *auditv1.TokenIssuance) []*auditv1.TokenIssuance {
	batch := []*auditv1.TokenIssuance{first}
	var linger <-chan time.Time
	if a.tuning.auditLinger > 0 {
		t := time.NewTimer(a.tuning.auditLinger)
		defer t.Stop()
		linger = t.C
	}
	for len(batch) < maxAuditBatch {
		select {
		case rec := <-a.queue:
			batch = append(batch, rec)
			continue
		default:
		}
		if linger == nil {
			return batch
		}
		select {
		case rec := <-a.queue:
			batch = append(batch, rec)
		case <-linger:
			return batch
		case <-a.stopCh:
			return batch
		}
	}
	return batch
}

// send delivers batch, retrying with backoff until it is accepted or the
// sender's context ends. A batch refused as invalid is split in halves so
// that one bad record cannot hold up the others; a single refused record is
// logged in full (the log is then its only trace) and dropped. It returns
// the number of records not delivered.
func (a *auditor) send(batch []*auditv1.TokenIssuance) int {
	backoff := a.tuning.minBackoff
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(a.ctx, a.tuning.auditTimeout)
		_, err := a.client.RecordTokenIssuance(ctx, &auditv1.RecordTokenIssuanceRequest{Issuances: batch})
		cancel()
		switch {
		case err == nil:
			return 0
		case status.Code(err) == codes.InvalidArgument && len(batch) > 1:
			h := len(batch) / 2
			return a.send(batch[:h]) + a.send(batch[h:])
		case status.Code(err) == codes.InvalidArgument:
			r := batch[0]
			a.log.Error("agentid-server refused a token issuance record; it is recorded only here",
				logKeyDelegationID, r.GetDelegationId(), logKeyAgentID, r.GetAgentId(),
				logKeyAudiences, r.GetAudiences(), logKeyExpiresAt, r.GetExpiresAt().AsTime(), logKeyError, err.Error())
			return 1
		}
		if attempt == 1 || attempt%10 == 0 {
			a.log.Warn("Failed to report token issuances; retrying", logKeyRecords, len(batch), logKeyAttempt, attempt, logKeyError, err.Error())
		}
		select {
		case <-a.ctx.Done():
			return len(batch)
		case <-time.After(jitter(backoff)):
		}
		backoff = min(2*backoff, a.tuning.maxBackoff)
	}
}
