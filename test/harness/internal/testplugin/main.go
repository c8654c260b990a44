// Command testplugin is a SPIRE external plugin for the harness's own tests:
// it proves that plugin_cmd, plugin_args, plugin_checksum and plugin_data
// reach SPIRE as the harness writes them. Its first argument picks the role:
//
//	composer  CredentialComposer: adds the claim "harness_marker" to every
//	          workload JWT-SVID; keeps SPIRE's defaults for everything else.
//	          With mimic_agentid = true it instead removes every audience
//	          with agentid's default marker prefix and adds claims of
//	          agentid's shape (pkg/claims) with fixed values: a benchmark
//	          diagnostic that tells what SPIRE spends on tokens of that
//	          shape from what agentid's own machinery costs.
//	attestor  WorkloadAttestor: gives every workload the selector value
//	          "marker:<marker>".
//
// Both take plugin_data { marker = "..." }.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/hashicorp/hcl"
	"github.com/spiffe/spire-plugin-sdk/pluginmain"
	workloadattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/workloadattestor/v1"
	credentialcomposerv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/credentialcomposer/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// MarkerClaim is the JWT-SVID claim the composer adds.
const MarkerClaim = "harness_marker"

type config struct {
	Marker       string `hcl:"marker"`
	MimicAgentID bool   `hcl:"mimic_agentid"`
}

type plugin struct {
	credentialcomposerv1.UnimplementedCredentialComposerServer
	workloadattestorv1.UnimplementedWorkloadAttestorServer
	configv1.UnimplementedConfigServer

	mu     sync.RWMutex
	marker string
	// mimic holds agentid-shaped claims, encoded once, when mimic_agentid
	// is set.
	mimic map[string]*structpb.Value
}

func (p *plugin) Configure(_ context.Context, req *configv1.ConfigureRequest) (*configv1.ConfigureResponse, error) {
	var c config
	if err := hcl.Decode(&c, req.HclConfiguration); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "testplugin: decode configuration: %v", err)
	}
	if c.Marker == "" {
		return nil, status.Error(codes.InvalidArgument, "testplugin: marker is required")
	}
	var mimic map[string]*structpb.Value
	if c.MimicAgentID {
		var err error
		if mimic, err = mimicClaims(); err != nil {
			return nil, status.Errorf(codes.Internal, "testplugin: %v", err)
		}
	}
	p.mu.Lock()
	p.marker = c.Marker
	p.mimic = mimic
	p.mu.Unlock()
	return &configv1.ConfigureResponse{}, nil
}

func (p *plugin) getMarker() (string, error) {
	m, _, err := p.get()
	return m, err
}

func (p *plugin) get() (string, map[string]*structpb.Value, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.marker == "" {
		return "", nil, status.Error(codes.FailedPrecondition, "testplugin: not configured")
	}
	return p.marker, p.mimic, nil
}

// MimicDelegationID is the delegation id in the claims mimic_agentid adds.
const MimicDelegationID = "dlg_0000000000000000000000000a"

// mimicClaims encodes the claims agentid-composer would add for a root
// delegation from a fixed user to spiffe://example.org/agent/bench.
func mimicClaims() (map[string]*structpb.Value, error) {
	user, err := delegation.NewUser("https://127.0.0.1:40000", "alice", "alice@example.com")
	if err != nil {
		return nil, err
	}
	scopes, err := delegation.ParseScopeString("campaigns:read")
	if err != nil {
		return nil, err
	}
	id := delegation.MustParseID(MimicDelegationID)
	c := claims.Claims{
		User: user, Scopes: scopes, ID: id, Root: id,
		Chain:     []spiffeid.ID{spiffeid.RequireFromString("spiffe://example.org/agent/bench")},
		ExpiresAt: time.Now().Add(24 * time.Hour).Truncate(time.Second),
	}
	out := map[string]*structpb.Value{}
	for k, v := range c.Map() {
		if out[k], err = structpb.NewValue(v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (p *plugin) Attest(context.Context, *workloadattestorv1.AttestRequest) (*workloadattestorv1.AttestResponse, error) {
	m, err := p.getMarker()
	if err != nil {
		return nil, err
	}
	return &workloadattestorv1.AttestResponse{SelectorValues: []string{"marker:" + m}}, nil
}

func (p *plugin) ComposeWorkloadJWTSVID(_ context.Context, req *credentialcomposerv1.ComposeWorkloadJWTSVIDRequest) (*credentialcomposerv1.ComposeWorkloadJWTSVIDResponse, error) {
	m, mimic, err := p.get()
	if err != nil {
		return nil, err
	}
	attrs := req.GetAttributes()
	if attrs.GetClaims() == nil {
		return nil, status.Error(codes.InvalidArgument, "testplugin: request without claims")
	}
	fields := attrs.Claims.Fields
	if mimic == nil {
		fields[MarkerClaim] = structpb.NewStringValue(m)
	} else {
		if aud := fields["aud"].GetListValue(); aud != nil {
			kept := aud.Values[:0]
			for _, v := range aud.Values {
				if !strings.HasPrefix(v.GetStringValue(), claims.MarkerPrefix) {
					kept = append(kept, v)
				}
			}
			aud.Values = kept
		}
		for k, v := range mimic {
			fields[k] = v
		}
	}
	return &credentialcomposerv1.ComposeWorkloadJWTSVIDResponse{Attributes: attrs}, nil
}

// The X.509 methods are intentionally not implemented: Unimplemented tells
// SPIRE to keep its defaults (inherited from the embedded server).

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: testplugin composer|attestor")
		os.Exit(2)
	}
	p := new(plugin)
	switch os.Args[1] {
	case "composer":
		pluginmain.Serve(credentialcomposerv1.CredentialComposerPluginServer(p), configv1.ConfigServiceServer(p))
	case "attestor":
		pluginmain.Serve(workloadattestorv1.WorkloadAttestorPluginServer(p), configv1.ConfigServiceServer(p))
	default:
		fmt.Fprintf(os.Stderr, "testplugin: unknown role %q\n", os.Args[1])
		os.Exit(2)
	}
}
