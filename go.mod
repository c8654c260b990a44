module github.com/agentid/agentid

go 1.26.0

require (
	github.com/hashicorp/hcl v1.0.0
	github.com/spiffe/go-spiffe/v2 v2.9.0
)
