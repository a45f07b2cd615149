// Package session owns a session's state in Redis: its event log (a Redis
// Stream whose entry IDs are the protocol's event ids), its conversation
// history (a second, short Stream), its metadata (the hash of the resume
// token, the turn counter, which run owns a turn), and live delivery of new
// events to every replica that holds one of the session's sockets.
//
// Keys, for a session id S and prefix P (default "parley"):
//
//	P:{S}:log   Stream   protocol events; field "e" holds the event's JSON without its id
//	P:{S}:hist  Stream   conversation turns for the LLM; fields r (role), c (content), n (turn)
//	P:{S}:meta  Hash     th (token hash), turn, replied + d:<turn> (done turns) + dm (the
//	                     highest turn ever marked d:; absent in sessions from before it), cut, run:<turn>,
//	                     settings (Settings, JSON), md (the front end's metadata, JSON),
//	                     he (the history's edit count: a cached window is stale once it moves),
//	                     xp (when a user turn last refreshed the keys' expiry, Redis's ms),
//	                     lid (the log's last event id), fc + f:<replica> (how many follows
//	                     of the session there are, in all and by each replica's Hub),
//	                     rq, dq, fq, eq, tq, oq and wq (the latest call that took a turn,
//	                     stored a delta, finished or failed a turn, appended another event,
//	                     stored a tool step or a tool's result, counted a follow: its key and
//	                     results, so that a script run again answers as it did the first time:
//	                     sent again by the Redis client, or by the caller under WithCall)
//	P:{S}       channel  each appended event is published here, as the client will see it
//	                     (PUBLISH, or SPUBLISH with Config.Sharded, as on a Redis Cluster),
//	                     when a replica other than the script's caller follows the session;
//	                     a message is a line "<replica> <id before its first event>", then
//	                     the events, a line each (compact JSON has no raw newline)
//
// The braces are a Redis Cluster hash tag: one session's keys share a slot,
// so each append is one atomic Lua script (append, publish, refresh TTL).
//
// Live delivery has two paths. A replica's own scripts return their
// events' ids, and the Store hands the events to the replica's Hub, which
// delivers them to its sinks at once, with no round trip through Pub/Sub
// (and skips its own messages, published for the others). Other replicas'
// events come by Pub/Sub. Events of one session may so reach a sink out
// of order, or a script's reply may be lost after it stored its events:
// each event comes with the id of the log's event before it, so a sink
// sees a gap and reads the log, and the Hub resyncs the sinks of a
// session whose script failed once Redis answers again.
//
// A typed turn's job (package turn's record of it, for a takeover) is
// written by the scripts that store and finish the turn (JobField), in a
// hash outside the session; on a Redis Cluster (Config.Cluster), beside
// them.
//
// A Store keeps, in memory, each recently started session's latest window
// of history entries (Config.HistoryCache), so that a turn's start reads
// only the entries stored since the last one.
//
// Store and Hub are safe for concurrent use; a Store has at most one Hub
// (NewHub), the one its scripts' events are handed to. Hub.Run owns the replica's
// Pub/Sub connections (one, or with sharded Pub/Sub on a cluster one per
// master node in use) and their receiving goroutines, and returns when its
// context is cancelled and they have ended.
package session
