package verify

// CacheLen reports how many tokens v's cache holds.
func CacheLen(v *Verifier) int { return v.cache.len() }

// DecodeJSONObject exposes the payload decoder to the fuzz tests.
var DecodeJSONObject = decodeJSONObject
