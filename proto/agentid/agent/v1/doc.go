// Package agentv1 is the Go code generated from agentid/agent/v1/agent.proto:
// the read-only AgentService over the agents declared in agentid-server's
// configuration and the state of their SPIRE registration entries. The
// .proto file is the reference for callers and limits. Regenerate with
// `make generate`; never edit *.pb.go.
//
// agentid-server implements it (embedding UnimplementedAgentServiceServer)
// and registers it with RegisterAgentServiceServer. The CLI lists agents
// whose reconcile failed like this:
//
//	client := agentv1.NewAgentServiceClient(conn)
//	resp, err := client.ListAgents(ctx, &agentv1.ListAgentsRequest{
//		SyncState: agentv1.SyncState_SYNC_STATE_ERROR,
//	})
//	for _, a := range resp.GetAgents() {
//		fmt.Println(a.GetName(), a.GetLastError())
//	}
//
// GetAgent takes either key of the GetAgentRequest_Name and
// GetAgentRequest_SpiffeId oneof wrappers.
package agentv1
