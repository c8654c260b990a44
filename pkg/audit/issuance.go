package audit

// The wire limits of RecordTokenIssuance, defined once: agentid-server
// refuses a call beyond them with INVALID_ARGUMENT, and the composer checks
// a token's audiences against them before it issues the token, so that the
// server never has reason to refuse the record of a token that exists.
const (
	// MaxIssuanceBatch bounds the records of one RecordTokenIssuance call.
	MaxIssuanceBatch = 1000
	// MaxIssuanceAudiences bounds the audiences of one issuance record.
	MaxIssuanceAudiences = 32
	// MaxIssuanceAudienceLength bounds one audience of a record, in bytes.
	MaxIssuanceAudienceLength = 2048
)
