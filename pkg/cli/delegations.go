package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

func (c *command) delegate(ctx context.Context, args []string) error {
	fs := newFlags(c.env, "delegate")
	agent := fs.String("agent", "", "SPIFFE ID of the agent (required)")
	var scopes scopeList
	fs.Var(&scopes, "scope", "scope to delegate (repeat or comma-separate; required)")
	ttl := fs.Duration("ttl", time.Hour, "requested lifetime (the policy may shorten it)")
	intent := fs.String("intent", "", "what the user wants done, in their words")
	tokenFile := fs.String("token-file", "", `file with the user's OIDC token ("-" for stdin; default $`+TokenEnv+`)`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *agent == "" || len(scopes) == 0 {
		return usagef("delegate: -agent and -scope are required")
	}
	token, err := c.readToken(*tokenFile, true)
	if err != nil {
		return err
	}
	conn, closeConn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer closeConn()
	resp, err := delegationv1.NewDelegationServiceClient(conn).CreateDelegation(ctx, &delegationv1.CreateDelegationRequest{
		UserToken: token, AgentId: *agent, Scopes: scopes, Ttl: durationpb.New(*ttl), Intent: *intent,
	})
	if err != nil {
		return rpcError("delegate", err)
	}
	return c.printDelegations(resp.Delegation)
}

func (c *command) subDelegate(ctx context.Context, args []string) error {
	fs := newFlags(c.env, "sub-delegate")
	parent := fs.String("parent", "", "id of the delegation to pass on (required)")
	agent := fs.String("agent", "", "SPIFFE ID of the receiving agent (required)")
	var scopes scopeList
	fs.Var(&scopes, "scope", "scope to pass on (repeat or comma-separate; required)")
	ttl := fs.Duration("ttl", time.Hour, "requested lifetime (capped at the parent's expiry)")
	intent := fs.String("intent", "", "the delegating agent's reading of the task")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *parent == "" || *agent == "" || len(scopes) == 0 {
		return usagef("sub-delegate: -parent, -agent and -scope are required")
	}
	conn, closeConn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer closeConn()
	resp, err := delegationv1.NewDelegationServiceClient(conn).CreateSubDelegation(ctx, &delegationv1.CreateSubDelegationRequest{
		ParentId: *parent, AgentId: *agent, Scopes: scopes, Ttl: durationpb.New(*ttl), Intent: *intent,
	})
	if err != nil {
		return rpcError("sub-delegate", err)
	}
	return c.printDelegations(resp.Delegation)
}

func (c *command) revoke(ctx context.Context, args []string) error {
	fs := newFlags(c.env, "revoke")
	reason := fs.String("reason", "", "why, for the audit log")
	asUser := fs.Bool("as-user", false, "revoke with the user's own fresh token instead of the caller's identity")
	tokenFile := fs.String("token-file", "", `with -as-user: file with the user's token ("-" for stdin; default $`+TokenEnv+`)`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("revoke: exactly one delegation id is required")
	}
	req := &delegationv1.RevokeDelegationRequest{Id: fs.Arg(0), Reason: *reason}
	if *asUser {
		token, err := c.readToken(*tokenFile, true)
		if err != nil {
			return err
		}
		req.UserToken = token
	}
	conn, closeConn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer closeConn()
	resp, err := delegationv1.NewDelegationServiceClient(conn).RevokeDelegation(ctx, req)
	if err != nil {
		return rpcError("revoke", err)
	}
	if c.g.output == "json" {
		return c.printJSON(resp)
	}
	fmt.Fprintf(c.env.Stdout, "revoked %d delegation(s)", resp.RevokedCount)
	if len(resp.RevokedIds) > 0 {
		fmt.Fprintf(c.env.Stdout, ": %s", strings.Join(resp.RevokedIds, " "))
	}
	fmt.Fprintln(c.env.Stdout)
	return nil
}

func (c *command) get(ctx context.Context, args []string) error {
	fs := newFlags(c.env, "get")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("get: exactly one delegation id is required")
	}
	conn, closeConn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer closeConn()
	resp, err := delegationv1.NewDelegationServiceClient(conn).GetDelegation(ctx, &delegationv1.GetDelegationRequest{Id: fs.Arg(0)})
	if err != nil {
		return rpcError("get", err)
	}
	return c.printDelegations(resp.Delegation)
}

func (c *command) list(ctx context.Context, args []string) error {
	fs := newFlags(c.env, "list")
	issuer := fs.String("user-issuer", "", "only this user's (with -user-subject)")
	subject := fs.String("user-subject", "", "only this user's (with -user-issuer)")
	agent := fs.String("agent", "", "only those held by this agent")
	state := fs.String("state", "", "active, revoked or expired")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	req := &delegationv1.ListDelegationsRequest{PrincipalIssuer: *issuer, PrincipalSubject: *subject, AgentId: *agent}
	if *state != "" {
		v, ok := delegationv1.State_value["STATE_"+strings.ToUpper(*state)]
		if !ok || v == 0 {
			return usagef("list: -state must be active, revoked or expired")
		}
		req.State = delegationv1.State(v)
	}
	conn, closeConn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer closeConn()
	client := delegationv1.NewDelegationServiceClient(conn)
	var all []*delegationv1.Delegation
	for {
		resp, err := client.ListDelegations(ctx, req)
		if err != nil {
			return rpcError("list", err)
		}
		all = append(all, resp.Delegations...)
		if resp.NextPageToken == "" {
			break
		}
		req.PageToken = resp.NextPageToken
	}
	return c.printDelegations(all...)
}

func (c *command) printDelegations(ds ...*delegationv1.Delegation) error {
	if c.g.output == "json" {
		if len(ds) == 1 {
			return c.printJSON(ds[0])
		}
		msgs := make([]proto.Message, len(ds))
		for i, d := range ds {
			msgs[i] = d
		}
		return c.printJSONList(msgs)
	}
	tw := tabwriter.NewWriter(c.env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tAGENT\tUSER\tSCOPES\tEXPIRES\tCHAIN")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Id, strings.ToLower(strings.TrimPrefix(d.State.String(), "STATE_")),
			d.AgentId, d.GetPrincipal().GetSubject(), strings.Join(d.Scopes, " "), fmtTime(d.ExpiresAt.AsTime()), strings.Join(d.Chain, " > "))
	}
	return tw.Flush()
}

var jsonOpts = protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: false}

func (c *command) printJSON(m proto.Message) error {
	b, err := jsonOpts.Marshal(m)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.env.Stdout, string(b))
	return nil
}

func (c *command) printJSONList(ms []proto.Message) error {
	fmt.Fprint(c.env.Stdout, "[")
	for i, m := range ms {
		b, err := protojson.Marshal(m)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprint(c.env.Stdout, ",")
		}
		fmt.Fprintf(c.env.Stdout, "\n  %s", b)
	}
	fmt.Fprintln(c.env.Stdout, "\n]")
	return nil
}
