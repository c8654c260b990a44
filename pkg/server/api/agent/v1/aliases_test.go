package agent_test

import "github.com/agentid/agentid/pkg/server/servertest"

// Short names for the fixture's identities in this package's tests.
var (
	orchestrator = servertest.Orchestrator
	analyst      = servertest.Analyst
	stranger     = servertest.Stranger
	newEnv       = servertest.Start
	ctxT         = servertest.Ctx
)
