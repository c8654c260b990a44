package sidecar

// For the proxy's tests in package sidecar_test.
var (
	StrippedByFamily = strippedByFamily
	KeptHeaders      = keptHeaders
)
