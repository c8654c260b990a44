package cli

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentid/agentid/pkg/apiconv"
	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/claims"
	agentv1 "github.com/agentid/agentid/proto/agentid/agent/v1"
	auditv1 "github.com/agentid/agentid/proto/agentid/audit/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// rpcError turns a gRPC error into a line a person can act on.
func rpcError(op string, err error) error {
	st := status.Convert(err)
	return fmt.Errorf("%s: %s: %s", op, strings.ToLower(st.Code().String()), st.Message())
}

func (c *command) agents(ctx context.Context, args []string) error {
	fs := newFlags(c.env, "agents")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	conn, closeConn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer closeConn()
	client := agentv1.NewAgentServiceClient(conn)
	req := &agentv1.ListAgentsRequest{}
	var all []*agentv1.Agent
	for {
		resp, err := client.ListAgents(ctx, req)
		if err != nil {
			return rpcError("agents", err)
		}
		all = append(all, resp.Agents...)
		if resp.NextPageToken == "" {
			break
		}
		req.PageToken = resp.NextPageToken
	}
	if c.g.output == "json" {
		msgs := make([]proto.Message, len(all))
		for i, a := range all {
			msgs[i] = a
		}
		return c.printJSONList(msgs)
	}
	tw := tabwriter.NewWriter(c.env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSPIFFE ID\tSYNC\tENTRY\tCEILING\tERROR")
	for _, a := range all {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Name, a.SpiffeId, strings.ToLower(strings.TrimPrefix(a.SyncState.String(), "SYNC_STATE_")),
			a.EntryId, strings.Join(a.ScopeCeiling, " "), a.LastError)
	}
	return tw.Flush()
}

// auditExport writes the log as JSON Lines, the format audit verify reads.
func (c *command) auditExport(ctx context.Context, args []string) error {
	fs := newFlags(c.env, "audit export")
	after := fs.Uint64("after", 0, "only events after this sequence number")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	conn, closeConn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer closeConn()
	stream, err := auditv1.NewAuditServiceClient(conn).ExportEvents(ctx, &auditv1.ExportEventsRequest{AfterSequence: *after})
	if err != nil {
		return rpcError("audit export", err)
	}
	w := bufio.NewWriter(c.env.Stdout)
	first := true
	events := func(yield func(*audit.Event, error) bool) {
		for {
			msg, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(nil, rpcError("audit export", err))
				return
			}
			if first {
				first = false
				base, err := apiconv.AnchorFromProto(msg.GetBase())
				if err != nil {
					yield(nil, fmt.Errorf("audit export: base: %w", err))
					return
				}
				// The log was pruned past where the export was asked to
				// start: say where it starts instead, on stderr so that
				// stdout stays JSON Lines.
				if base.Sequence > *after {
					fmt.Fprintf(c.env.Stderr, "agentid: the log starts after %s; verify with -from %s\n", base, base)
				}
			}
			for _, pe := range msg.Events {
				ev, err := apiconv.EventFromProto(pe)
				if !yield(&ev, err) || err != nil {
					return
				}
			}
		}
	}
	// Flush what was received even on error: its last sequence is where a
	// retry resumes (-after).
	err = audit.WriteJSONL(w, events)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return err
}

// auditPrune deletes the log through an anchor, which the server checks
// against the stored event: the head printed by `audit verify` for the last
// archive, so that only verified, archived events are deleted.
func (c *command) auditPrune(ctx context.Context, args []string) error {
	fs := newFlags(c.env, "audit prune")
	through := fs.String("through", "", "the last event to delete, as <sequence>:<hash>: the head that audit verify printed\n"+
		"for the archive that holds it")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("audit prune: unexpected argument %q", fs.Arg(0))
	}
	if *through == "" {
		return usagef("audit prune: -through <sequence>:<hash> is required")
	}
	anchor, err := audit.ParseAnchor(*through)
	if err != nil {
		return usagef("-through: %v", err)
	}
	conn, closeConn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer closeConn()
	resp, err := auditv1.NewAuditServiceClient(conn).PruneEvents(ctx, &auditv1.PruneEventsRequest{
		ThroughSequence: anchor.Sequence, ThroughHash: anchor.Hash[:],
	})
	if err != nil {
		return rpcError("audit prune", err)
	}
	base, err := apiconv.AnchorFromProto(resp.GetBase())
	if err != nil {
		return fmt.Errorf("audit prune: base: %w", err)
	}
	fmt.Fprintf(c.env.Stdout, "pruned %d events; the log now starts after %s\n", resp.GetPrunedCount(), base)
	return nil
}

// auditVerify checks an export offline: no server is contacted.
func (c *command) auditVerify(args []string) error {
	fs := newFlags(c.env, "audit verify")
	head := fs.String("head", "", "known last event as <sequence>:<hash>, to detect a truncated tail")
	from := fs.String("from", "", "the event just before the export, as <sequence>:<hash> (the head printed for the\n"+
		"previous archive), to verify an export made with audit export -after")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	in := c.env.Stdin
	name := "standard input"
	if fs.NArg() == 1 && fs.Arg(0) != "-" {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return err
		}
		defer f.Close()
		in, name = f, fs.Arg(0)
	} else if fs.NArg() > 1 {
		return usagef("audit verify: at most one file")
	}
	var cfg audit.VerifyConfig
	if *from != "" {
		a, err := audit.ParseAnchor(*from)
		if err != nil {
			return usagef("-from: %v", err)
		}
		cfg.From = a
	}
	if *head != "" {
		a, err := audit.ParseAnchor(*head)
		if err != nil {
			return usagef("-head: %v", err)
		}
		cfg.Head = a
	}
	v := audit.NewVerifier(cfg)
	for e, err := range audit.ReadJSONL(in) {
		if err == nil {
			err = v.Add(e)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := v.Close(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	// The count is of the events read: an archive that starts after an
	// anchor (-from) holds fewer than its head's sequence number.
	fmt.Fprintf(c.env.Stdout, "ok: %d events, chain intact; head %s\n", v.Count(), v.Last())
	return nil
}

// tokenInspect decodes a JWT-SVID's payload and shows what agentid put in
// it. It does not check the signature: it is for reading, not trusting.
func (c *command) tokenInspect(args []string) error {
	fs := newFlags(c.env, "token inspect")
	file := fs.String("file", "-", `file holding the token ("-" for standard input)`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *file == "" {
		*file = "-"
	}
	raw, err := c.readToken(*file, true)
	if err != nil {
		return err
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return errors.New("token inspect: not a compact JWT (want three dot-separated parts)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return errors.New("token inspect: payload is not base64url")
	}
	var all map[string]any
	if err := json.Unmarshal(payload, &all); err != nil {
		return errors.New("token inspect: payload is not a JSON object")
	}
	subText, _ := all["sub"].(string)
	sub, err := spiffeid.FromString(subText)
	if err != nil {
		return fmt.Errorf("token inspect: sub is not a SPIFFE ID: %w", err)
	}
	var exp time.Time
	if f, ok := all["exp"].(float64); ok {
		exp = time.Unix(int64(f), 0)
	}
	cl, err := claims.Decode(all, sub)
	noDelegation := errors.Is(err, claims.ErrNoDelegation)
	if err != nil && !noDelegation {
		return fmt.Errorf("token inspect: %w", err)
	}
	if c.g.output == "json" {
		out := map[string]any{"agent": sub.String(), "expires_at": fmtTime(exp), "audience": printable(all["aud"]), "signature_checked": false}
		if !noDelegation {
			for k, v := range cl.Map() {
				out[k] = v
			}
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintln(c.env.Stdout, string(b))
		return nil
	}
	tw := tabwriter.NewWriter(c.env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "agent\t%s\n", sub)
	fmt.Fprintf(tw, "audience\t%s\n", printable(all["aud"]))
	fmt.Fprintf(tw, "token expires\t%s\n", fmtTime(exp))
	if noDelegation {
		fmt.Fprintf(tw, "delegation\tnone (a plain JWT-SVID)\n")
	} else {
		fmt.Fprintf(tw, "user\t%s (%s)\n", cl.User.Subject(), cl.User.Issuer())
		if e := cl.User.Email(); e != "" {
			fmt.Fprintf(tw, "email\t%s\n", e)
		}
		fmt.Fprintf(tw, "scopes\t%s\n", cl.Scopes)
		fmt.Fprintf(tw, "delegation\t%s (root %s)\n", cl.ID, cl.Root)
		chain := make([]string, len(cl.Chain))
		for i, a := range cl.Chain {
			chain[i] = a.String()
		}
		fmt.Fprintf(tw, "chain\t%s\n", strings.Join(chain, " > "))
		fmt.Fprintf(tw, "delegation expires\t%s\n", fmtTime(cl.ExpiresAt))
	}
	fmt.Fprintf(tw, "signature\tNOT CHECKED (inspect only)\n")
	return tw.Flush()
}

// printable renders an untrusted claim value for a terminal: quoted, so
// control characters and escape sequences cannot reach it.
func printable(v any) string {
	switch t := v.(type) {
	case string:
		return fmt.Sprintf("%q", t)
	case []any:
		parts := make([]string, len(t))
		for i, e := range t {
			parts[i] = printable(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	default:
		return fmt.Sprintf("%q", fmt.Sprint(t))
	}
}
