// Package ratelimit is a token bucket kept in Redis, shared by every
// replica: one Lua script refills and takes tokens atomically, with time
// from the Redis server (no clock skew between replicas).
//
// Keys are Config.Prefix + key. A key that belongs to a session should
// carry the session's Redis Cluster hash tag, e.g. "{<session id>}", so the
// bucket lives in the session's slot.
//
// Limiter's methods are safe for concurrent use.
package ratelimit
