package audit_test

import "github.com/agentid/agentid/pkg/server/servertest"

// Short names for the fixture's identities in this package's tests.
var (
	orchestrator = servertest.Orchestrator
	frontend     = servertest.Frontend
	newEnv       = servertest.Start
	ctxT         = servertest.Ctx
	create       = servertest.Create
)

type clients = servertest.Clients
