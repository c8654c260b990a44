package audit_test

import "github.com/agentid/agentid/pkg/server/servertest"

// Short names for the fixture's identities in this package's tests.
var (
	orchestrator  = servertest.Orchestrator
	analyst       = servertest.Analyst
	writer        = servertest.Writer
	frontend      = servertest.Frontend
	verifierID    = servertest.Verifier
	stranger      = servertest.Stranger
	newEnv        = servertest.Start
	newEnvWithLog = servertest.StartWithLog
	ctxT          = servertest.Ctx
	create        = servertest.Create
	sub           = servertest.Sub
)

const audience = servertest.Audience

type clients = servertest.Clients
