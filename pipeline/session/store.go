package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley/pipeline/event"
	"github.com/redis/go-redis/v9"
)

// Config of a Store. A zero field means the default in its comment.
type Config struct {
	Prefix     string        // key prefix; default "parley"
	TTL        time.Duration // an idle session expires after this (up to an eighth later: turns refresh it now and then); default 30m
	MaxEvents  int64         // events kept per session log (approximate trim); default 10000
	MaxHistory int64         // turns kept in the history stream; default 200
	MaxTurns   int64         // user turns a session may have; default 10000
	// Sharded: events go out with sharded Pub/Sub (SPUBLISH, SSUBSCRIBE;
	// Redis 7), which a Redis Cluster keeps within the session's shard
	// instead of broadcasting to every node. Default false: classic
	// PUBLISH, which every Redis and the embedded one speak.
	Sharded bool
	// Cluster: Redis is a Redis Cluster, where a script may touch only
	// the keys of its session's slot: a turn's job (JobField) then goes
	// beside its script, in the same round trip, not in it. Default
	// false.
	Cluster bool
	// HistoryCache: sessions whose latest history window this replica
	// keeps between their turns, so that a turn's start reads only the
	// entries stored since the last one (histCache); default 2048, the
	// least recently used dropped first, and at most 32 MiB of their text
	// in all; negative: none.
	HistoryCache int
}

func (c *Config) setDefaults() {
	if c.Prefix == "" {
		c.Prefix = "parley"
	}
	if c.TTL <= 0 {
		c.TTL = 30 * time.Minute
	}
	if c.MaxEvents <= 0 {
		c.MaxEvents = 10000
	}
	if c.MaxHistory <= 0 {
		c.MaxHistory = 200
	}
	if c.MaxTurns <= 0 {
		c.MaxTurns = 10000
	}
	if c.HistoryCache == 0 {
		c.HistoryCache = 2048
	}
}

// Errors returned by Authenticate and the append calls.
var (
	ErrNotFound = errors.New("session not found or expired")
	ErrBadToken = errors.New("wrong session token")
	ErrBadID    = errors.New("malformed session id")
	// ErrTurnLimit: the session has had Config.MaxTurns user turns.
	ErrTurnLimit = errors.New("the session has had its most turns")
	// ErrJobNotStored: in a cluster, the turn was stored and started but
	// the job beside it was not (AppendUserTurnStarted).
	ErrJobNotStored = errors.New("the turn's job was not stored")
)

// A JobField is a field of a hash outside the session: a turn's job, the
// record a replica keeps of the turns it has taken, for a takeover to
// find (package turn). AppendUserTurnStarted sets it (to Value) as it
// stores the turn, FinishReply deletes it as it finishes the turn: in the
// script itself, so that job and turn change together and the round trip
// carries two commands fewer, each of which the autopipeliner would send
// from a goroutine of its own (docs/benchmarks.md, "The job in the
// turn's scripts"). In a cluster (Config.Cluster) the hash is in another
// slot than the session, so the command goes beside the script instead.
// The zero JobField is none.
type JobField struct {
	Key, Field, Value string
}

// with adds j to a script's keys and arguments (its field, then its
// value to set it; without one the script deletes it), or, in a cluster,
// returns the command that goes beside the script instead.
func (s *Store) with(ctx context.Context, j JobField, keys []string, args []any) ([]string, []any, *redis.IntCmd) {
	switch {
	case j.Key == "":
		return keys, args, nil
	case s.cfg.Cluster && j.Value != "":
		return keys, args, redis.NewIntCmd(ctx, "hset", j.Key, j.Field, j.Value)
	case s.cfg.Cluster:
		return keys, args, redis.NewIntCmd(ctx, "hdel", j.Key, j.Field)
	}
	args = append(args, j.Field)
	if j.Value != "" {
		args = append(args, j.Value)
	}
	return append(keys, j.Key), args, nil
}

// Event is one stored event as the client sees it: Wire is its JSON with
// the "id" field first.
type Event struct {
	ID   string
	Wire []byte
}

// Turn is one entry of the conversation history.
type Turn struct {
	Role    string
	Content string
	N       int64 // the turn it belongs to
	// ToolCalls: an assistant message that asked for tools has them here,
	// as JSON (an array of llm.ToolCall). CallID: a tool message is the
	// result of that call.
	ToolCalls string
	CallID    string
}

// Store reads and writes sessions. Safe for concurrent use.
type Store struct {
	rdb redis.UniversalClient
	cfg Config
	ttl string // cfg.TTL in ms, as scripts take it
	pub string // the scripts' publish command: PUBLISH or SPUBLISH
	// hist: the sessions' latest history windows; nil with HistoryCache < 0.
	hist *histCache
	// replica names this Store's process to the scripts, which publish
	// only for the followers of other replicas (fanout.lua); local is
	// the Hub that delivers to this replica's own.
	replica string
	local   atomic.Pointer[Hub]
	calls   atomic.Uint64 // callKey's counter
}

// callKey names one call that takes a turn, stores an event or finishes a
// turn, unique across processes (replica is random per Store: half of it
// is enough, and a short key keeps the meta hash's values under Redis's
// 64 bytes for its compact form): a script sent again after its reply was
// lost finds that it already ran (requested.lua, finish.lua).
func (s *Store) callKey() string {
	return s.replica[:8] + "/" + strconv.FormatUint(s.calls.Add(1), 36)
}

// A Call is one call to the Store that its caller may send again itself:
// package turn retries a turn's finish while Redis is away, and sends a
// reply delta that failed again at its next flush. Under WithCall every
// try carries the call's key, so that a try after one whose reply was
// lost (all of the Redis client's own retries failing too) is answered
// as that run was, as the client's retries are, and not stored twice.
type Call string

// NewCall names a call.
func (s *Store) NewCall() Call { return Call(s.callKey()) }

type callCtx struct{}

// WithCall is ctx under which the Store's keyed calls carry c's key:
// for the tries of one call, never for two different calls.
func WithCall(ctx context.Context, c Call) context.Context {
	return context.WithValue(ctx, callCtx{}, c)
}

// keyOf is the key of the call made under ctx: its Call's, else a new
// one.
func (s *Store) keyOf(ctx context.Context) string {
	if c, _ := ctx.Value(callCtx{}).(Call); c != "" {
		return string(c)
	}
	return s.callKey()
}

// NewStore returns a Store on rdb.
func NewStore(rdb redis.UniversalClient, cfg Config) *Store {
	cfg.setDefaults()
	pub := "PUBLISH"
	if cfg.Sharded {
		pub = "SPUBLISH"
	}
	var r [8]byte
	_, _ = rand.Read(r[:]) // crypto/rand does not fail
	st := &Store{rdb: rdb, cfg: cfg, ttl: strconv.FormatInt(cfg.TTL.Milliseconds(), 10), pub: pub, replica: hex.EncodeToString(r[:])}
	if cfg.HistoryCache > 0 {
		st.hist = newHistCache(cfg.HistoryCache)
	}
	return st
}

// TTL is the idle expiry in force.
func (s *Store) TTL() time.Duration { return s.cfg.TTL }

// MaxTurns is the most user turns a session may have.
func (s *Store) MaxTurns() int64 { return s.cfg.MaxTurns }

func (s *Store) logKey(id string) string  { return s.cfg.Prefix + ":{" + id + "}:log" }
func (s *Store) histKey(id string) string { return s.cfg.Prefix + ":{" + id + "}:hist" }
func (s *Store) metaKey(id string) string { return s.cfg.Prefix + ":{" + id + "}:meta" }

// Channel is the Pub/Sub channel that carries the session's live events.
func (s *Store) Channel(id string) string { return s.cfg.Prefix + ":{" + id + "}" }

// Sharded reports whether the session channels are shard channels.
func (s *Store) Sharded() bool { return s.cfg.Sharded }

// writeKeys are the keys of a script that appends and publishes: the
// session's log, history and meta, and its channel last, declared so that
// a cluster routes sharded publishing with the rest (the channel has the
// session's hash tag, so all of them share a slot).
func (s *Store) writeKeys(id string) []string {
	return []string{s.logKey(id), s.histKey(id), s.metaKey(id), s.Channel(id)}
}

var followScript = redis.NewScript(lua("follow.lua"))

// countFollow counts a follow of session id by this replica (d = 1) or
// its end (-1) in the meta hash, where the scripts look for the followers
// of other replicas (fanout.lua). It has a deadline of its own: a follow
// counted but not uncounted costs only a publish per event.
func (s *Store) countFollow(id string, d int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := followScript.Run(ctx, s.rdb, []string{s.metaKey(id)}, s.replica, d, s.keyOf(ctx)).Err(); err != nil {
		return fmt.Errorf("session: count a follow: %w", err)
	}
	return nil
}

// delivered hands the events a script stored (ids[i], bodies[i]; prev the
// log's id before the first) to this replica's sinks of the session.
func (s *Store) delivered(id, prev string, ids []string, bodies ...[]byte) {
	if h := s.local.Load(); h != nil && len(ids) > 0 {
		h.local(s.Channel(id), prev, ids, bodies)
	}
}

// lost is for a script that failed after it may have stored events (its
// reply, and so their local delivery, lost): this replica's sinks of the
// session read the log (Hub.markLost).
func (s *Store) lost(id string) {
	if h := s.local.Load(); h != nil {
		h.markLost(s.Channel(id))
	}
}

// Load loads the Lua scripts, so that the first turn does not pay for it
// and a broken Redis is found at start-up.
func (s *Store) Load(ctx context.Context) error {
	for _, sc := range []*redis.Script{followScript, userTurnStartScript, userTurnScript, respondScript, settingsScript, startScript, deltaScript, finishScript, failScript, cutScript, toolStepScript, toolResultScript, toolCancelScript, metadataScript, appendScript} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("session: load script: %w", err)
		}
	}
	return nil
}

// ValidID reports whether id has the shape of a session id (32 hex
// digits). Ids from clients are checked before they go into a key.
func ValidID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func tokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Create makes a new session with a random 128-bit id and a 256-bit resume
// token. Only the token's hash is stored.
func (s *Store) Create(ctx context.Context) (id, token string, err error) {
	var idb [16]byte
	var tb [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", "", err
	}
	if _, err := rand.Read(tb[:]); err != nil {
		return "", "", err
	}
	id = hex.EncodeToString(idb[:])
	token = base64.RawURLEncoding.EncodeToString(tb[:])
	pipe := s.rdb.TxPipeline()
	// dm 0: no turn marked done out of order yet (done.lua).
	pipe.HSet(ctx, s.metaKey(id), "th", tokenHash(token), "created", time.Now().UnixMilli(), "turn", 0, "dm", 0)
	pipe.PExpire(ctx, s.metaKey(id), s.cfg.TTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return "", "", fmt.Errorf("session: create: %w", err)
	}
	return id, token, nil
}

// Authenticate checks a resume token against the stored hash, in constant
// time, and refreshes the session's expiry.
func (s *Store) Authenticate(ctx context.Context, id, token string) error {
	if !ValidID(id) {
		return ErrBadID
	}
	th, err := s.rdb.HGet(ctx, s.metaKey(id), "th").Result()
	if errors.Is(err, redis.Nil) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("session: authenticate: %w", err)
	}
	want := tokenHash(token)
	if subtle.ConstantTimeCompare([]byte(th), []byte(want)) != 1 {
		return ErrBadToken
	}
	return s.Touch(ctx, id)
}

// Touch refreshes the idle expiry of all the session's keys. A connected
// client calls it now and then, so a session does not expire under an open
// socket.
func (s *Store) Touch(ctx context.Context, id string) error {
	pipe := s.rdb.Pipeline()
	for _, k := range []string{s.metaKey(id), s.logKey(id), s.histKey(id)} {
		pipe.PExpire(ctx, k, s.cfg.TTL)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// The scripts build the same wire form as event.WithID, so that the bytes
// a replica publishes are the bytes every socket sends.

var userTurnScript = redis.NewScript(lua("expiry.lua") + fanoutLua + requestedLua + lua("item.lua"))

// requestedLua lets a script that takes a turn or stores a delta see that
// its call already has, when the Redis client sends it again (its reply
// lost).
var requestedLua = lua("requested.lua")

// AppendUserTurn stores a user turn that gets a response: it takes the
// next turn number, appends a final transcript event to the log and the
// text to the history, and publishes the event.
func (s *Store) AppendUserTurn(ctx context.Context, id, text string, source event.Source) (turn int64, eventID string, err error) {
	return s.appendUser(ctx, id, text, source, true)
}

// AppendItem stores a user item without asking for a response (Respond
// asks for one later): as AppendUserTurn otherwise.
func (s *Store) AppendItem(ctx context.Context, id, text string, source event.Source) (turn int64, eventID string, err error) {
	return s.appendUser(ctx, id, text, source, false)
}

func (s *Store) appendUser(ctx context.Context, id, text string, source event.Source, respond bool) (int64, string, error) {
	pre, post := event.AroundTurn(event.Transcript{Text: text, Final: true, Source: source})
	flag := "0"
	if respond {
		flag = "1"
	}
	res, err := userTurnScript.Run(ctx, s.rdb, s.writeKeys(id),
		s.ttl, s.cfg.MaxEvents, s.cfg.MaxHistory, pre, post, text, s.pub, s.cfg.MaxTurns, flag, s.replica, s.keyOf(ctx)).Slice()
	if err != nil {
		s.lost(id)
		return 0, "", scriptErr("append turn", err)
	}
	if len(res) < 3 {
		return 0, "", fmt.Errorf("session: append turn: %d values from the script", len(res))
	}
	turn, eid := res[0].(int64), res[1].(string)
	s.delivered(id, res[2].(string), []string{eid}, turnBody(pre, turn, post))
	return turn, eid, nil
}

// TurnOfRun is the turn that run owns in the session, if it still owns
// one that has no reply yet: for a job stored beside its turn's start
// (AppendUserTurnStarted), which knew its run but not yet its turn. A
// rare call (a takeover), so it reads the whole meta hash.
func (s *Store) TurnOfRun(ctx context.Context, id, run string) (int64, bool, error) {
	meta, err := s.rdb.HGetAll(ctx, s.metaKey(id)).Result()
	if err != nil {
		return 0, false, fmt.Errorf("session: turn of run: %w", err)
	}
	for k, v := range meta {
		if n, ok := strings.CutPrefix(k, "run:"); ok && v == run {
			turn, err := strconv.ParseInt(n, 10, 64)
			return turn, err == nil, nil
		}
	}
	return 0, false, nil
}

var userTurnStartScript = redis.NewScript(lua("expiry.lua") + fanoutLua + requestedLua + lua("itemstart.lua"))

// AppendUserTurnStarted is AppendUserTurn and Start in one script, for a
// turn that goes straight to a free slot: it stores the turn, makes run
// its owner, and returns what Start would (a new turn is never done, cut
// or waiting for tools): one script call fewer per turn. The turn's job
// (TurnOfRun then finds the turn of its run) is stored with the turn, or
// not at all: a turn refused stores none. Only in a cluster can the turn
// be stored without it: the error is then ErrJobNotStored, with the
// turn.
func (s *Store) AppendUserTurnStarted(ctx context.Context, id, text string, source event.Source, run string, max int, job JobField) (int64, Started, error) {
	pre, post := event.AroundTurn(event.Transcript{Text: text, Final: true, Source: source})
	max = min(max, int(s.cfg.MaxHistory))
	win := s.hist.get(id, max)
	lastID, edits := win.args()
	keys, args, beside := s.with(ctx, job, s.writeKeys(id),
		[]any{s.ttl, s.cfg.MaxEvents, s.cfg.MaxHistory, pre, post, text, s.pub, s.cfg.MaxTurns,
			run, max, lastID, edits, s.replica, s.keyOf(ctx)})
	res, err := s.evalWith(ctx, userTurnStartScript, keys, args, beside).Slice()
	if err != nil {
		s.lost(id)
		if beside != nil && beside.Val() == 1 {
			s.rdb.HDel(context.WithoutCancel(ctx), job.Key, job.Field) // no turn for it
		}
		return 0, Started{}, scriptErr("append turn", err)
	}
	if len(res) < 7 {
		return 0, Started{}, fmt.Errorf("session: append turn: %d values from the script", len(res))
	}
	turn, eid := res[0].(int64), res[1].(string)
	s.delivered(id, res[6].(string), []string{eid}, turnBody(pre, turn, post))
	if beside != nil && beside.Err() != nil {
		return turn, Started{}, fmt.Errorf("session: append turn: %w: %w", ErrJobNotStored, beside.Err())
	}
	st := Started{Status: StartOK}
	if st.Settings, err = parseSettings(res[2].(string)); err != nil {
		return 0, Started{}, err
	}
	if max > 0 {
		entries, _ := res[4].([]any)
		next, err := win.merge(id, max, res[3].(string), entries, res[5].(int64) == 1)
		if err != nil {
			return 0, Started{}, err
		}
		s.hist.put(win, next)
		st.History = next.turns
	}
	return turn, st, nil
}

// turnBody is a user item's stored event, as the scripts make it: the
// turn number between the halves of event.AroundTurn.
func turnBody(pre string, turn int64, post string) []byte {
	b := make([]byte, 0, len(pre)+len(post)+20)
	b = append(b, pre...)
	b = strconv.AppendInt(b, turn, 10)
	return append(b, post...)
}

var respondScript = redis.NewScript(requestedLua + lua("respond.lua"))

// Respond gives a response its turn: the latest turn when its items have
// no response yet, else a new turn without an item of its own.
func (s *Store) Respond(ctx context.Context, id string) (turn int64, err error) {
	turn, err = respondScript.Run(ctx, s.rdb, []string{s.metaKey(id)}, s.cfg.MaxTurns, s.keyOf(ctx)).Int64()
	if err != nil {
		return 0, scriptErr("respond", err)
	}
	return turn, nil
}

// scriptErr maps a script's error replies onto the package's errors.
func scriptErr(what string, err error) error {
	switch {
	case strings.Contains(err.Error(), "NOSESSION"):
		return ErrNotFound
	case strings.Contains(err.Error(), "TURNLIMIT"):
		return ErrTurnLimit
	}
	return fmt.Errorf("session: %s: %w", what, err)
}

// Start results.
const (
	StartOK       = 1  // the run owns the turn
	StartWaiting  = 2  // the turn waits for tool results (Started.Pending)
	StartDone     = 0  // the turn already has its reply: do nothing
	StartCut      = -1 // the turn was interrupted before it started
	appendOK      = 1
	appendStale   = 0
	appendCut     = -1
	finishApplied = 1
)

// doneLua decides whether a turn has its reply. Turns of one session may
// finish out of order, so "replied" is a watermark (every turn up to it is
// done) plus a d:<turn> field for each done turn above it.
var doneLua = lua("done.lua")

// fanoutLua publishes a script's events for the other replicas' followers.
var fanoutLua = lua("fanout.lua")

// stringsOf is a script's reply of strings.
func stringsOf(vs []any) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i], _ = v.(string)
	}
	return out
}

// nonEmpty is bodies without the empty ones: the events a script stored.
func nonEmpty(bodies [][]byte) [][]byte {
	out := bodies[:0]
	for _, b := range bodies {
		if len(b) > 0 {
			out = append(out, b)
		}
	}
	return out
}

var startScript = redis.NewScript(doneLua + lua("start.lua"))

// StartTurn makes run the owner of turn. It reports StartDone when the turn
// already has its reply (a redelivered job), StartCut when the caller
// interrupted it before it started, and whether another run had owned the
// turn before (a takeover).
func (s *Store) StartTurn(ctx context.Context, id string, turn int64, run string) (status int, takeover bool, err error) {
	st, err := s.Start(ctx, id, turn, run, 0, "")
	return st.Status, st.Takeover, err
}

// Started is what Start found.
type Started struct {
	Status   int    // StartOK, StartDone, StartCut or StartWaiting
	Takeover bool   // another run had owned the turn: this one takes it over
	History  []Turn // oldest first; shared with the store's cache: read only
	Settings Settings
	Steps    int           // tool steps the turn has taken
	Pending  []PendingCall // with StartWaiting: the calls it waits for
}

// Start is StartTurn that also returns, when the run owns the turn or it
// was cut, the session's settings and up to max of the latest history
// entries (as History does), read in the same script. The replica keeps
// each session's window (histCache), so that the script sends only the
// entries stored since the last start. A turn that waits for tool results
// is not owned (StartWaiting); its job, now at jobAt (a stream and an
// entry: see ToolStep), is where a last result will find it.
func (s *Store) Start(ctx context.Context, id string, turn int64, run string, max int, jobAt string) (Started, error) {
	max = min(max, int(s.cfg.MaxHistory))
	win := s.hist.get(id, max)
	lastID, edits := win.args()
	res, err := startScript.Run(ctx, s.rdb, []string{s.metaKey(id), s.histKey(id)}, turn, run, jobAt, max, lastID, edits).Slice()
	if err != nil {
		return Started{}, fmt.Errorf("session: start turn: %w", err)
	}
	if len(res) < 8 {
		return Started{}, fmt.Errorf("session: start turn: %d values from the script", len(res))
	}
	st := Started{Status: int(res[0].(int64)), Takeover: res[1].(string) != "", Steps: int(res[3].(int64))}
	if st.Status == StartDone {
		return st, nil
	}
	if st.Settings, err = parseSettings(res[2].(string)); err != nil {
		return Started{}, err
	}
	if pend, _ := res[4].([]any); len(pend) > 0 {
		for i := 0; i+1 < len(pend); i += 2 {
			callID, _ := pend[i].(string)
			rec, _ := pend[i+1].(string)
			st.Pending = append(st.Pending, parsePending(callID, rec))
		}
	}
	if st.Status == StartWaiting || max <= 0 {
		return st, nil
	}
	entries, _ := res[6].([]any)
	next, err := win.merge(id, max, res[5].(string), entries, res[7].(int64) == 1)
	if err != nil {
		return Started{}, err
	}
	s.hist.put(win, next)
	st.History = next.turns
	return st, nil
}

var deltaScript = redis.NewScript(fanoutLua + requestedLua + lua("delta.lua"))

// AppendStatus says what happened to an append.
type AppendStatus int

// Append statuses.
const (
	Appended AppendStatus = appendOK
	Stale    AppendStatus = appendStale // another run owns the turn now: stop
	Cut      AppendStatus = appendCut   // the caller interrupted the turn: stop
)

// AppendDelta appends a reply.delta event if run still owns the turn and
// the turn has not been interrupted. reset marks the first delta of a run
// that took the turn over: the client drops the deltas it had for the turn.
func (s *Store) AppendDelta(ctx context.Context, id string, turn int64, run, text string, reset bool) (AppendStatus, error) {
	body := event.Marshal(event.ReplyDelta{Turn: turn, Text: text, Reset: reset})
	res, err := deltaScript.Run(ctx, s.rdb, []string{s.logKey(id), s.metaKey(id), s.Channel(id)},
		s.ttl, s.cfg.MaxEvents, s.pub, turn, run, body, s.replica, s.keyOf(ctx)).Slice()
	if err != nil {
		s.lost(id)
		return 0, fmt.Errorf("session: append delta: %w", err)
	}
	st := AppendStatus(res[0].(int64))
	if st == Appended && len(res) >= 3 {
		s.delivered(id, res[2].(string), []string{res[1].(string)}, body)
	}
	return st, nil
}

var finishScript = redis.NewScript(doneLua + fanoutLua + requestedLua + lua("finish.lua"))

// FinishTurn stores the turn's reply: an "interrupted" event first when the
// turn was cut, then "reply.done" with text, and text as the assistant's
// turn in the history. It does nothing and returns false when run no longer
// owns the turn or the turn already has its reply, so a redelivered turn
// never produces a second reply.
func (s *Store) FinishTurn(ctx context.Context, id string, turn int64, run, text string, interrupted bool) (bool, error) {
	st, err := s.FinishReply(ctx, id, Finish{Turn: turn, Run: run, Text: text, Interrupted: interrupted})
	return st != FinishNone, err
}

// Finish describes a turn's end for FinishReply.
type Finish struct {
	Turn int64
	Run  string
	// Prior is the text of the turn's earlier tool steps, already in the
	// history with their calls: reply.done says Prior + Text, the history
	// keeps Text.
	Prior       string
	Text        string // the reply, after Prior
	Tail        string // the end of Text not yet stored as a reply.delta
	Reset       bool   // the tail is the first delta of a run that took the turn over
	Interrupted bool
	Job         JobField // the turn's job, deleted with the finish whatever its status; its Value is not used
}

// FinishStatus says what FinishReply stored.
type FinishStatus int

// Finish statuses.
const (
	FinishNone FinishStatus = 0 // the run no longer owns the turn, or it has its reply
	Finished   FinishStatus = 1 // the tail as a delta, then the reply as given
	// FinishedCut: the turn was cut before the tail was stored; the reply
	// stored is Text without Tail, marked interrupted.
	FinishedCut FinishStatus = 2
)

// FinishReply is FinishTurn that also stores the reply's Tail as a last
// reply.delta and deletes the turn's job (f.Job), all in one script.
func (s *Store) FinishReply(ctx context.Context, id string, f Finish) (FinishStatus, error) {
	var tail, ib, cutIB, cutDB []byte
	var cutText string
	if f.Tail != "" {
		tail = event.Marshal(event.ReplyDelta{Turn: f.Turn, Text: f.Tail, Reset: f.Reset})
		cutText = strings.TrimSuffix(f.Text, f.Tail)
		cutIB = event.Marshal(event.Interrupted{Turn: f.Turn})
		cutDB = event.Marshal(event.ReplyDone{Turn: f.Turn, Text: f.Prior + cutText, Interrupted: true})
	}
	if f.Interrupted {
		ib = event.Marshal(event.Interrupted{Turn: f.Turn})
	}
	db := event.Marshal(event.ReplyDone{Turn: f.Turn, Text: f.Prior + f.Text, Interrupted: f.Interrupted})
	job := f.Job
	job.Value = "" // deleted
	keys, args, beside := s.with(ctx, job, s.writeKeys(id),
		[]any{s.ttl, s.cfg.MaxEvents, s.cfg.MaxHistory, s.pub, f.Turn, f.Run, f.Text,
			tail, ib, db, cutIB, cutDB, cutText, s.replica, s.keyOf(ctx)}) // []byte goes out as it is, with no string copy
	res, err := s.evalWith(ctx, finishScript, keys, args, beside).Slice()
	if err != nil {
		s.lost(id)
		return FinishNone, fmt.Errorf("session: finish turn: %w", err)
	}
	if beside != nil && beside.Err() != nil {
		// Once more on its own; a job still left behind is answered as
		// done when a takeover finds it, and dropped.
		s.rdb.HDel(ctx, job.Key, job.Field)
	}
	st := FinishStatus(res[0].(int64))
	if st != FinishNone && len(res) < 2 {
		s.lost(id) // run again after its reply was lost: the sockets read the log
	}
	if st == FinishNone || len(res) < 2 {
		return st, nil
	}
	bodies := [][]byte{tail, ib, db}
	if st == FinishedCut {
		bodies = [][]byte{cutIB, cutDB}
	}
	s.delivered(id, res[1].(string), stringsOf(res[2:]), nonEmpty(bodies)...)
	return st, nil
}

// evalWith runs the script and the command beside it (nil: none) in one
// round trip. A Redis that lost its scripts (a restart) gets the script's
// source. The command beside keeps its own result and error: the caller
// reads them.
func (s *Store) evalWith(ctx context.Context, sc *redis.Script, keys []string, args []any, beside *redis.IntCmd) *redis.Cmd {
	if beside == nil {
		return sc.Run(ctx, s.rdb, keys, args...)
	}
	if _, ok := s.rdb.(*redis.AutoPipeliner); ok {
		// Its Pipeline() takes a connection of its own: sent at once, the
		// two ride the autopipeliner's next batch together instead.
		done := make(chan struct{})
		go func() { // ends when the command has its reply
			defer close(done)
			_ = s.rdb.Process(ctx, beside)
		}()
		cmd := sc.Run(ctx, s.rdb, keys, args...)
		<-done
		return cmd
	}
	pipe := s.rdb.Pipeline()
	cmd := sc.EvalSha(ctx, pipe, keys, args...)
	_ = pipe.Process(ctx, beside)
	_, _ = pipe.Exec(ctx)
	if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		return sc.Eval(ctx, s.rdb, keys, args...)
	}
	return cmd
}

var failScript = redis.NewScript(doneLua + requestedLua + lua("fail.lua"))

// FailTurn marks a turn as finished without a reply (the upstream failed),
// so that no other replica retries it. It returns false when run no longer
// owns the turn.
func (s *Store) FailTurn(ctx context.Context, id string, turn int64, run string) (bool, error) {
	n, err := failScript.Run(ctx, s.rdb, []string{s.metaKey(id)}, turn, run, s.keyOf(ctx)).Int()
	if err != nil {
		return false, fmt.Errorf("session: fail turn: %w", err)
	}
	return n == 1, nil
}

var cutScript = redis.NewScript(lua("cut.lua"))

// Cut interrupts every turn of the session up to the latest one: runs
// that own them stop at their next append. It returns the latest turn.
func (s *Store) Cut(ctx context.Context, id string) (int64, error) {
	n, err := cutScript.Run(ctx, s.rdb, []string{s.metaKey(id)}).Int64()
	if err != nil {
		return 0, fmt.Errorf("session: cut: %w", err)
	}
	return n, nil
}

// History returns up to max of the latest turns of the conversation, oldest
// first.
func (s *Store) History(ctx context.Context, id string, max int) ([]Turn, error) {
	if max <= 0 {
		return nil, nil
	}
	msgs, err := s.rdb.XRevRangeN(ctx, s.histKey(id), "+", "-", int64(max)).Result()
	if err != nil {
		return nil, fmt.Errorf("session: history: %w", err)
	}
	return historyOf(msgs), nil
}

// historyOf turns XREVRANGE's entries (newest first) into turns, oldest
// first.
func historyOf(msgs []redis.XMessage) []Turn {
	out := make([]Turn, 0, len(msgs))
	for i := len(msgs) - 1; i >= 0; i-- {
		v := msgs[i].Values
		r, _ := v["r"].(string)
		c, _ := v["c"].(string)
		tc, _ := v["tc"].(string)
		call, _ := v["i"].(string)
		n, _ := strconv.ParseInt(fmt.Sprint(v["n"]), 10, 64)
		out = append(out, Turn{Role: r, Content: c, N: n, ToolCalls: tc, CallID: call})
	}
	return out
}

// Range returns up to count events stored after the event id after ("" or
// "0" for the start), oldest first.
func (s *Store) Range(ctx context.Context, id, after string, count int64) ([]Event, error) {
	start := "-"
	if after != "" && after != "0" && after != "0-0" {
		start = "(" + after
	}
	msgs, err := s.rdb.XRangeN(ctx, s.logKey(id), start, "+", count).Result()
	if err != nil {
		return nil, fmt.Errorf("session: range: %w", err)
	}
	out := make([]Event, 0, len(msgs))
	for _, m := range msgs {
		body, _ := m.Values["e"].(string)
		if len(body) < 2 || body[0] != '{' {
			continue
		}
		out = append(out, Event{ID: m.ID, Wire: event.WithID(m.ID, body)})
	}
	return out, nil
}

// Oldest returns the id of the oldest event still in the log, or "" when
// the log is empty. A resume from before it has lost events to trimming.
func (s *Store) Oldest(ctx context.Context, id string) (string, error) {
	msgs, err := s.rdb.XRangeN(ctx, s.logKey(id), "-", "+", 1).Result()
	if err != nil || len(msgs) == 0 {
		return "", err
	}
	return msgs[0].ID, nil
}

// Publish sends an event that is not stored (an error, a state change) to
// every socket of the session, on any replica.
func (s *Store) Publish(ctx context.Context, id string, wire []byte) error {
	if s.cfg.Sharded {
		return s.rdb.SPublish(ctx, s.Channel(id), wire).Err()
	}
	return s.rdb.Publish(ctx, s.Channel(id), wire).Err()
}

// ValidEventID reports whether id has the shape of a stream entry id
// ("ms-seq"); resume ids from clients are checked before use.
func ValidEventID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok {
		_, err := strconv.ParseUint(id, 10, 64)
		return err == nil
	}
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return err1 == nil && err2 == nil
}

// CompareIDs orders two stream entry ids: -1, 0 or 1.
func CompareIDs(a, b string) int {
	am, as := splitID(a)
	bm, bs := splitID(b)
	switch {
	case am < bm:
		return -1
	case am > bm:
		return 1
	case as < bs:
		return -1
	case as > bs:
		return 1
	}
	return 0
}

func splitID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	s, _ := strconv.ParseUint(seq, 10, 64)
	return m, s
}

// Entry is one entry of the history stream, with its stream id.
type Entry struct {
	ID string
	Turn
}

// HistoryEntries returns the whole history (at most Config.MaxHistory
// entries), oldest first, with each entry's stream id: what an edit or a
// deletion names.
func (s *Store) HistoryEntries(ctx context.Context, id string) ([]Entry, error) {
	msgs, err := s.rdb.XRangeN(ctx, s.histKey(id), "-", "+", s.cfg.MaxHistory+64).Result()
	if err != nil {
		return nil, fmt.Errorf("session: history: %w", err)
	}
	out := make([]Entry, 0, len(msgs))
	for i := range msgs {
		t := historyOf(msgs[i : i+1])[0]
		out = append(out, Entry{ID: msgs[i].ID, Turn: t})
	}
	return out, nil
}

// EditHistory replaces the history entry entryID with t, or deletes it
// when t is nil: a client that truncates what the model said (what the
// caller heard of it) or deletes an item. The replacement goes to the
// end of the stream; the model sees the history in turn order, so it
// keeps its place. ErrNotFound when the session has expired.
func (s *Store) EditHistory(ctx context.Context, id, entryID string, t *Turn) error {
	n, err := s.rdb.Exists(ctx, s.metaKey(id)).Result()
	if err != nil {
		return fmt.Errorf("session: edit history: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	pipe := s.rdb.TxPipeline()
	pipe.XDel(ctx, s.histKey(id), entryID)
	// Every replica's cached window of this history is stale now.
	pipe.HIncrBy(ctx, s.metaKey(id), "he", 1)
	if t != nil {
		v := map[string]any{"r": t.Role, "c": t.Content, "n": t.N}
		if t.ToolCalls != "" {
			v["tc"] = t.ToolCalls
		}
		if t.CallID != "" {
			v["i"] = t.CallID
		}
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.histKey(id), MaxLen: s.cfg.MaxHistory, Approx: true, Values: v})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("session: edit history: %w", err)
	}
	return nil
}
