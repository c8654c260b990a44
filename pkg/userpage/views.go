package userpage

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentid/agentid/pkg/agent"
	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
	"github.com/sirupsen/logrus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// view is what every template gets.
type view struct {
	Title   string
	User    string // who is signed in, for the header
	Admin   bool
	CSRF    string
	Message string
	SignIn  bool // offer the sign-in link
	Data    any
}

var funcs = template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"iso":       func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"states":    func() []string { return []string{"active", "revoked", "expired"} },
	"maxListed": func() int { return MaxListed },
	"maxStory":  func() int { return MaxStoryEvents },
	"nodeview":  func(n *node, showUser bool) nodeView { return nodeView{N: n, ShowUser: showUser} },
}

// nodeView is what the "node" template gets.
type nodeView struct {
	N        *node
	ShowUser bool
}

func (p *Page) render(w http.ResponseWriter, r *http.Request, code int, name string, s *session, v view) {
	if s != nil {
		v.User = displayUser(s)
		v.Admin = s.admin
		v.CSRF = s.csrf
	}
	var b strings.Builder
	if err := p.tmpl[name].ExecuteTemplate(&b, "layout", v); err != nil {
		p.cfg.Log.WithError(err).Error("User page template failed")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write([]byte(b.String()))
}

func displayUser(s *session) string {
	if e := s.ident.User.Email(); e != "" {
		return e
	}
	return s.ident.User.Subject()
}

// storeFailed answers a store error: the page says to retry, the log says why.
func (p *Page) storeFailed(w http.ResponseWriter, r *http.Request, s *session, op string, err error) {
	p.cfg.Log.WithError(err).WithField("op", op).Error("User page store call failed")
	p.render(w, r, http.StatusServiceUnavailable, "message", s, view{Title: "Unavailable", Message: "The store did not answer. Try again in a moment; nothing was changed."})
}

func (p *Page) notFound(w http.ResponseWriter, r *http.Request, s *session) {
	p.render(w, r, http.StatusNotFound, "message", s, view{Title: "Not found", Message: "There is no such delegation."})
}

// node is one delegation in a tree.
type node struct {
	D        *delegation.Delegation
	State    string
	AgentRef string // the declared agent's name, or the SPIFFE ID
	User     string
	Match    bool // matches the listing's filter
	Children []*node
}

// listing is the data of the delegations page.
type listing struct {
	Trees              []*node
	Agent, State       string
	Agents             []string // SPIFFE IDs for the filter
	Page, Pages, Total int
	Prev, Next         string // query strings of the neighbour pages
	Truncated          bool
	AllUsers           bool
}

// visible reports whether s may see d: her own, or any for an admin.
func visible(s *session, d *delegation.Delegation) bool {
	return s.admin || (d.User.Issuer() == s.ident.User.Issuer() && d.User.Subject() == s.ident.User.Subject())
}

// agentNames maps SPIFFE IDs to declared agent names.
func (p *Page) agentNames(ctx context.Context) (map[string]string, error) {
	recs, err := p.cfg.Store.ListAgents(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(recs))
	for _, a := range recs {
		m[a.SPIFFEID] = a.Name
	}
	return m, nil
}

func (p *Page) newNode(d *delegation.Delegation, names map[string]string, now time.Time) *node {
	ref := d.Agent.String()
	if n, ok := names[ref]; ok {
		ref = n
	}
	return &node{D: d, State: d.EffectiveState(now).String(), AgentRef: ref, User: d.User.String(), Match: true}
}

// listQuery is the listing's query, checked: the filter values must be
// well formed (400 otherwise), the page a positive number.
type listQuery struct {
	agent string
	state delegation.State
	page  int
}

func parseListQuery(q map[string][]string) (listQuery, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	var lq listQuery
	if a := get("agent"); a != "" {
		id, err := spiffeid.FromString(a)
		if err != nil {
			return lq, errors.New("agent: not a SPIFFE ID")
		}
		lq.agent = id.String()
	}
	if st := get("state"); st != "" {
		s, err := delegation.ParseState(st)
		if err != nil {
			return lq, errors.New("state: must be active, revoked or expired")
		}
		lq.state = s
	}
	lq.page = 1
	if pg := get("page"); pg != "" {
		n, err := strconv.Atoi(pg)
		if err != nil || n < 1 || n > MaxListed {
			return lq, errors.New("page: must be a positive number")
		}
		lq.page = n
	}
	return lq, nil
}

func (p *Page) listDelegations(w http.ResponseWriter, r *http.Request, s session) {
	lq, err := parseListQuery(r.URL.Query())
	if err != nil {
		p.render(w, r, http.StatusBadRequest, "message", &s, view{Title: "Bad request", Message: err.Error()})
		return
	}
	data, err := p.buildListing(r.Context(), &s, lq)
	if err != nil {
		p.storeFailed(w, r, &s, "list delegations", err)
		return
	}
	p.render(w, r, http.StatusOK, "delegations", &s, view{Title: "Delegations", Data: data})
}

// buildListing reads the user's delegations (every user's for an admin),
// builds one tree per root, newest root first, keeps the trees with a
// node that matches the filter and cuts the page.
func (p *Page) buildListing(ctx context.Context, s *session, lq listQuery) (*listing, error) {
	f := store.Filter{}
	if !s.admin {
		f.UserIssuer, f.UserSubject = s.ident.User.Issuer(), s.ident.User.Subject()
	}
	names, err := p.agentNames(ctx)
	if err != nil {
		return nil, err
	}
	now := p.cfg.Clock()
	data := &listing{Agent: lq.agent, State: "", AllUsers: s.admin}
	if lq.state != delegation.StateUnspecified {
		data.State = lq.state.String()
	}
	ds, truncated, err := p.readAll(ctx, f)
	if err != nil {
		return nil, err
	}
	data.Truncated = truncated
	all := make([]*node, 0, len(ds))
	byID := make(map[delegation.ID]*node, len(ds))
	agents := map[string]bool{}
	for _, d := range ds {
		n := p.newNode(d, names, now)
		n.Match = (lq.agent == "" || lq.agent == d.Agent.String()) && (lq.state == delegation.StateUnspecified || lq.state == d.EffectiveState(now))
		all = append(all, n)
		byID[d.ID] = n
		agents[d.Agent.String()] = true
	}
	var roots []*node
	for _, n := range all { // creation order: a parent before its children
		if parent, ok := byID[n.D.Parent]; ok && !n.D.Parent.IsZero() {
			parent.Children = append(parent.Children, n)
			continue
		}
		roots = append(roots, n)
	}
	var kept []*node
	for i := len(roots) - 1; i >= 0; i-- {
		if anyMatch(roots[i]) {
			kept = append(kept, roots[i])
		}
	}
	for a := range agents {
		data.Agents = append(data.Agents, a)
	}
	slices.Sort(data.Agents)
	data.Total = len(kept)
	data.Pages = max(1, (len(kept)+TreesPerPage-1)/TreesPerPage)
	data.Page = min(lq.page, data.Pages)
	lo := (data.Page - 1) * TreesPerPage
	data.Trees = kept[lo:min(lo+TreesPerPage, len(kept))]
	q := func(page int) string {
		v := []string{}
		if lq.agent != "" {
			v = append(v, "agent="+template.URLQueryEscaper(lq.agent))
		}
		if data.State != "" {
			v = append(v, "state="+data.State)
		}
		return "?" + strings.Join(append(v, "page="+strconv.Itoa(page)), "&")
	}
	if data.Page > 1 {
		data.Prev = q(data.Page - 1)
	}
	if data.Page < data.Pages {
		data.Next = q(data.Page + 1)
	}
	return data, nil
}

// readAll returns the delegations f selects, oldest first, at most
// MaxListed (and whether there were more). Decoding them is most of a
// listing's cost, so the result is kept until the store's revision moves:
// any create or revoke anywhere drops every cached listing. (A purge adds
// no revision; a purged delegation may stay listed until the next change,
// and its page then answers 404.)
func (p *Page) readAll(ctx context.Context, f store.Filter) ([]*delegation.Delegation, bool, error) {
	rev, err := p.cfg.Store.Revision(ctx)
	if err != nil {
		return nil, false, err
	}
	p.cacheMu.Lock()
	if rev != p.cacheRev {
		clear(p.cache)
		p.cacheRev = rev
	}
	c, ok := p.cache[f]
	p.cacheMu.Unlock()
	if ok {
		return c.ds, c.truncated, nil
	}
	var ds []*delegation.Delegation
	truncated := false
	for tok := ""; ; {
		page, next, err := p.cfg.Store.ListDelegations(ctx, f, store.Page{Size: store.MaxPageSize, Token: tok})
		if err != nil {
			return nil, false, err
		}
		if n := MaxListed - len(ds); len(page) > n {
			page, truncated = page[:n], true
		}
		ds = append(ds, page...)
		if next == "" || truncated {
			break
		}
		tok = next
	}
	p.cacheMu.Lock()
	if p.cacheRev == rev {
		if len(p.cache) >= maxCachedListings {
			clear(p.cache)
		}
		p.cache[f] = cachedListing{ds: ds, truncated: truncated}
	}
	p.cacheMu.Unlock()
	return ds, truncated, nil
}

// maxCachedListings bounds the listings kept (one per user who looked
// since the last change).
const maxCachedListings = 256

type cachedListing struct {
	ds        []*delegation.Delegation // shared: never changed
	truncated bool
}

func anyMatch(n *node) bool {
	if n.Match {
		return true
	}
	return slices.ContainsFunc(n.Children, anyMatch)
}

// lookup reads the delegation named in the path and checks that the
// session may see it. Malformed, unknown and someone else's ids all answer
// the same 404, so ids cannot be probed.
func (p *Page) lookup(w http.ResponseWriter, r *http.Request, s *session) (*delegation.Delegation, bool) {
	id, err := delegation.ParseID(r.PathValue("id"))
	if err != nil {
		p.notFound(w, r, s)
		return nil, false
	}
	d, err := p.cfg.Store.GetDelegation(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		p.notFound(w, r, s)
		return nil, false
	}
	if err != nil {
		p.storeFailed(w, r, s, "read delegation", err)
		return nil, false
	}
	if !visible(s, d) {
		p.cfg.Log.WithFields(logrus.Fields{"user": s.ident.User.String(), "delegation_id": d.ID.String()}).Warn("User page: another user's delegation asked for")
		p.notFound(w, r, s)
		return nil, false
	}
	return d, true
}

// subtree reads d's descendants, breadth first, at most MaxListed.
func (p *Page) subtree(ctx context.Context, d *delegation.Delegation, names map[string]string, now time.Time) (*node, int, error) {
	root := p.newNode(d, names, now)
	queue, count := []*node{root}, 1
	for len(queue) > 0 && count < MaxListed {
		n := queue[0]
		queue = queue[1:]
		kids, err := p.cfg.Store.Children(ctx, n.D.ID)
		if err != nil {
			return nil, 0, err
		}
		for _, k := range kids {
			c := p.newNode(k, names, now)
			n.Children = append(n.Children, c)
			queue = append(queue, c)
			count++
		}
	}
	return root, count, nil
}

// story is the data of a delegation's page.
type story struct {
	Tree      *node
	Chain     []*node // ancestors, root first
	Events    []storyEvent
	Truncated bool
	Tokens    int
	LastToken time.Time
	Log       logState
	Active    int // active delegations a revoke would take
	RevokeURL string
}

type storyEvent struct {
	audit.Event
	Text     string
	Details  []string
	SealedOK bool // the event's hash is the hash of its content
}

type logState struct {
	OK       bool
	Through  uint64
	Problem  string
	Checked  bool
	Verified uint64
}

func (p *Page) showDelegation(w http.ResponseWriter, r *http.Request, s session) {
	d, ok := p.lookup(w, r, &s)
	if !ok {
		return
	}
	st, err := p.buildStory(r.Context(), d)
	if err != nil {
		p.storeFailed(w, r, &s, "read story", err)
		return
	}
	p.render(w, r, http.StatusOK, "delegation", &s, view{Title: "Delegation " + d.ID.String(), Data: st})
}

func (p *Page) buildStory(ctx context.Context, d *delegation.Delegation) (*story, error) {
	names, err := p.agentNames(ctx)
	if err != nil {
		return nil, err
	}
	now := p.cfg.Clock()
	tree, _, err := p.subtree(ctx, d, names, now)
	if err != nil {
		return nil, err
	}
	st := &story{Tree: tree, RevokeURL: "/delegations/" + d.ID.String() + "/revoke"}
	for cur := d; !cur.Parent.IsZero() && len(st.Chain) < delegation.MaxDepthLimit; {
		parent, err := p.cfg.Store.GetDelegation(ctx, cur.Parent)
		if errors.Is(err, store.ErrNotFound) {
			break
		} else if err != nil {
			return nil, err
		}
		st.Chain = append([]*node{p.newNode(parent, names, now)}, st.Chain...)
		cur = parent
	}
	// The story: the events of this delegation and of everything under it.
	var evs []audit.Event
	var walk func(n *node) error
	walk = func(n *node) error {
		if n.D.ActiveAt(now) {
			st.Active++
		}
		for tok := ""; len(evs) < MaxStoryEvents; {
			page, next, err := p.cfg.Store.ListEvents(ctx, store.EventFilter{DelegationID: n.D.ID.String()}, store.Page{Size: store.MaxPageSize, Token: tok})
			if err != nil {
				return err
			}
			evs = append(evs, page...)
			if next == "" {
				break
			}
			tok = next
		}
		for _, c := range n.Children {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(tree); err != nil {
		return nil, err
	}
	if len(evs) > MaxStoryEvents {
		evs, st.Truncated = evs[:MaxStoryEvents], true
	}
	slices.SortFunc(evs, func(a, b audit.Event) int { return int64cmp(a.Sequence, b.Sequence) })
	for _, e := range evs {
		if e.Type == audit.TypeTokenIssued && e.DelegationID == d.ID.String() {
			st.Tokens++
			if e.Time.After(st.LastToken) {
				st.LastToken = e.Time
			}
		}
		st.Events = append(st.Events, describe(e, names))
	}
	if st.Log, err = p.verifyLog(ctx); err != nil {
		return nil, err
	}
	return st, nil
}

func int64cmp(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// describe turns an event into a line of the story.
func describe(e audit.Event, names map[string]string) storyEvent {
	agent := e.Agent
	if n, ok := names[agent]; ok {
		agent = n
	}
	var text string
	switch e.Type {
	case audit.TypeDelegationCreated:
		text = fmt.Sprintf("Delegated to %s", agent)
	case audit.TypeSubDelegated:
		text = fmt.Sprintf("Sub-delegated to %s", agent)
	case audit.TypeTokenIssued:
		text = fmt.Sprintf("Token issued to %s", agent)
	case audit.TypeRevoked:
		if of := e.Detail[store.DetailCascadeOf]; of != "" {
			text = "Revoked with " + of
		} else {
			text = "Revoked"
		}
	case audit.TypeDenied:
		text = "Request denied"
	default:
		text = e.Type.String()
	}
	se := storyEvent{Event: e, Text: text, SealedOK: e.ComputeHash() == e.Hash}
	keys := make([]string, 0, len(e.Detail))
	for k := range e.Detail {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		se.Details = append(se.Details, k+": "+e.Detail[k])
	}
	return se
}

// verifyLog checks the audit chain as `agentid audit verify` does, from the
// log's base to its current end. What was verified is remembered, so each
// view checks only the events appended since (a prune restarts it at the
// new base); the first view after a start reads the whole log.
func (p *Page) verifyLog(ctx context.Context) (logState, error) {
	p.auditMu.Lock()
	defer p.auditMu.Unlock()
	base, err := p.cfg.Store.AuditBase(ctx)
	if err != nil {
		return logState{}, err
	}
	if base != p.auditBase || p.auditVerified.Sequence < base.Sequence {
		p.auditBase, p.auditVerified = base, base
	}
	v := audit.NewVerifier(audit.VerifyConfig{From: p.auditVerified})
	for tok := ""; ; {
		page, next, err := p.cfg.Store.ListEvents(ctx, store.EventFilter{AfterSeq: p.auditVerified.Sequence}, store.Page{Size: store.MaxPageSize, Token: tok})
		if err != nil {
			return logState{}, err
		}
		for i := range page {
			if err := v.Add(&page[i]); err != nil {
				return logState{Checked: true, Problem: err.Error(), Through: v.Last().Sequence}, nil
			}
		}
		if next == "" {
			break
		}
		tok = next
	}
	if err := v.Close(); err != nil {
		return logState{Checked: true, Problem: err.Error(), Through: v.Last().Sequence}, nil
	}
	p.auditVerified = v.Last()
	return logState{Checked: true, OK: true, Through: p.auditVerified.Sequence}, nil
}

// revocation is the data of the confirmation page.
type revocation struct {
	Tree      *node
	Taken     []*node // what the revoke takes: d and its active descendants
	RevokeURL string
	Inactive  bool
}

func (p *Page) confirmRevoke(w http.ResponseWriter, r *http.Request, s session) {
	d, ok := p.lookup(w, r, &s)
	if !ok {
		return
	}
	names, err := p.agentNames(r.Context())
	if err != nil {
		p.storeFailed(w, r, &s, "list agents", err)
		return
	}
	now := p.cfg.Clock()
	tree, _, err := p.subtree(r.Context(), d, names, now)
	if err != nil {
		p.storeFailed(w, r, &s, "read tree", err)
		return
	}
	rv := &revocation{Tree: tree, RevokeURL: "/delegations/" + d.ID.String() + "/revoke", Inactive: !d.ActiveAt(now)}
	var walk func(n *node)
	walk = func(n *node) {
		if n.D.ActiveAt(now) {
			rv.Taken = append(rv.Taken, n)
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(tree)
	p.render(w, r, http.StatusOK, "revoke", &s, view{Title: "Revoke " + d.ID.String(), Data: rv})
}

func (p *Page) revoke(w http.ResponseWriter, r *http.Request, s session, _ string) {
	d, ok := p.lookup(w, r, &s)
	if !ok {
		return
	}
	now := p.cfg.Clock()
	if !d.ActiveAt(now) {
		p.render(w, r, http.StatusConflict, "message", &s, view{Title: "Not active",
			Message: "This delegation is already " + d.EffectiveState(now).String() + "; nothing was changed."})
		return
	}
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if reason == "" {
		reason = "revoked on the user page"
	}
	if len(reason) > delegation.MaxReasonLength || !validText(reason) {
		p.render(w, r, http.StatusBadRequest, "message", &s, view{Title: "Bad request",
			Message: fmt.Sprintf("reason: must be printable text of at most %d bytes; nothing was changed.", delegation.MaxReasonLength)})
		return
	}
	actor := "user:" + s.ident.User.String()
	ids, _, err := p.cfg.Store.RevokeDelegation(r.Context(), store.Revocation{
		ID: d.ID, At: now, Reason: reason,
		Event: audit.Event{Time: now, Type: audit.TypeRevoked, Actor: actor, DelegationID: d.ID.String(),
			Agent: d.Agent.String(), User: d.User.String(), Detail: map[string]string{"reason": reason, "via": "user_page"}},
	})
	switch {
	case errors.Is(err, store.ErrAlreadyRevoked):
		p.render(w, r, http.StatusConflict, "message", &s, view{Title: "Not active", Message: "This delegation is already revoked; nothing was changed."})
		return
	case errors.Is(err, store.ErrNotFound):
		p.notFound(w, r, &s)
		return
	case err != nil:
		p.storeFailed(w, r, &s, "revoke", err)
		return
	}
	p.cfg.Log.WithFields(logrus.Fields{"delegation_id": d.ID.String(), "actor": actor, "admin": s.admin, "revoked_count": len(ids)}).Info("Delegation revoked on the user page")
	http.Redirect(w, r, "/delegations/"+d.ID.String(), http.StatusSeeOther)
}

// validText accepts printable UTF-8 (and spaces).
func validText(s string) bool {
	for _, c := range s {
		if c == 0xFFFD || c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// agentRow is one declared agent on the agents page.
type agentRow struct {
	store.Agent
	Spec  agent.Agent
	Scope string
	Subs  []string
	Bad   string // the record did not decode
}

func (p *Page) listAgents(w http.ResponseWriter, r *http.Request, s session) {
	recs, err := p.cfg.Store.ListAgents(r.Context())
	if err != nil {
		p.storeFailed(w, r, &s, "list agents", err)
		return
	}
	rows := make([]agentRow, 0, len(recs))
	for _, rec := range recs {
		row := agentRow{Agent: rec}
		if a, err := agent.Unmarshal(rec.Spec); err != nil {
			row.Bad = "the stored declaration does not decode"
		} else {
			row.Spec, row.Scope = a, a.ScopeCeiling.String()
			for _, sub := range a.SubAgents {
				row.Subs = append(row.Subs, sub.String())
			}
		}
		rows = append(rows, row)
	}
	p.render(w, r, http.StatusOK, "agents", &s, view{Title: "Agents", Data: rows})
}
