package verify

import "context"

type contextKey struct{}

// NewContext returns ctx carrying p, as the HTTP and gRPC adapters store the
// verified principal for handlers.
func NewContext(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, contextKey{}, p)
}

// FromContext returns the principal an adapter verified for this request.
// Handlers behind the adapters can rely on it being present; ok is false only
// when ctx did not pass through one.
func FromContext(ctx context.Context) (p *Principal, ok bool) {
	p, ok = ctx.Value(contextKey{}).(*Principal)
	return p, ok && p != nil
}
