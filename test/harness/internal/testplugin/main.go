// Command testplugin is a SPIRE external plugin for the harness's own tests:
// it proves that plugin_cmd, plugin_args, plugin_checksum and plugin_data
// reach SPIRE as the harness writes them. Its first argument picks the role:
//
//	composer  CredentialComposer: adds the claim "harness_marker" to every
//	          workload JWT-SVID; keeps SPIRE's defaults for everything else.
//	attestor  WorkloadAttestor: gives every workload the selector value
//	          "marker:<marker>".
//
// Both take plugin_data { marker = "..." }.
package main

import (
	"context"
	"fmt"
	"os"
	"sync"

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
	Marker string `hcl:"marker"`
}

type plugin struct {
	credentialcomposerv1.UnimplementedCredentialComposerServer
	workloadattestorv1.UnimplementedWorkloadAttestorServer
	configv1.UnimplementedConfigServer

	mu     sync.RWMutex
	marker string
}

func (p *plugin) Configure(_ context.Context, req *configv1.ConfigureRequest) (*configv1.ConfigureResponse, error) {
	var c config
	if err := hcl.Decode(&c, req.HclConfiguration); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "testplugin: decode configuration: %v", err)
	}
	if c.Marker == "" {
		return nil, status.Error(codes.InvalidArgument, "testplugin: marker is required")
	}
	p.mu.Lock()
	p.marker = c.Marker
	p.mu.Unlock()
	return &configv1.ConfigureResponse{}, nil
}

func (p *plugin) getMarker() (string, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.marker == "" {
		return "", status.Error(codes.FailedPrecondition, "testplugin: not configured")
	}
	return p.marker, nil
}

func (p *plugin) Attest(context.Context, *workloadattestorv1.AttestRequest) (*workloadattestorv1.AttestResponse, error) {
	m, err := p.getMarker()
	if err != nil {
		return nil, err
	}
	return &workloadattestorv1.AttestResponse{SelectorValues: []string{"marker:" + m}}, nil
}

func (p *plugin) ComposeWorkloadJWTSVID(_ context.Context, req *credentialcomposerv1.ComposeWorkloadJWTSVIDRequest) (*credentialcomposerv1.ComposeWorkloadJWTSVIDResponse, error) {
	m, err := p.getMarker()
	if err != nil {
		return nil, err
	}
	attrs := req.GetAttributes()
	if attrs.GetClaims() == nil {
		return nil, status.Error(codes.InvalidArgument, "testplugin: request without claims")
	}
	attrs.Claims.Fields[MarkerClaim] = structpb.NewStringValue(m)
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
