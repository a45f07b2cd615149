package signaling

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parleyhq/parley/pipeline/session"
)

// Sessions attaches sockets to sessions: it creates or resumes a session
// and follows its events into a Feed. Safe for concurrent use.
type Sessions struct {
	Store *session.Store
	Hub   *session.Hub
}

// Errors of Attach, for each protocol to word.
var (
	ErrBadEventID = errors.New("signaling: not an event id")
	ErrExpired    = errors.New("signaling: the session has expired or never existed")
	ErrBadToken   = errors.New("signaling: the session id or token is wrong")
)

// Attach gives socket s its session: a new one when id is "", else the
// one id names, if token is its resume token. The feed replays the stored
// events after lastEvent ("": all), then the live ones; it starts with
// Start, once the protocol has said what it says first. encode turns a
// stored event into the protocol's frames (nil: as it is). It returns the
// session's resume token. Other errors than the ones above mean Redis
// failed.
func (ss *Sessions) Attach(ctx context.Context, s *Socket, id, token, lastEvent string, encode func([]byte) [][]byte) (*Feed, string, error) {
	if id != "" {
		if lastEvent != "" && !session.ValidEventID(lastEvent) {
			return nil, "", ErrBadEventID
		}
		switch err := ss.Store.Authenticate(ctx, id, token); {
		case errors.Is(err, session.ErrNotFound):
			return nil, "", ErrExpired
		case errors.Is(err, session.ErrBadToken), errors.Is(err, session.ErrBadID):
			return nil, "", ErrBadToken
		case err != nil:
			return nil, "", fmt.Errorf("signaling: resume: %w", err)
		}
	} else {
		var err error
		if id, token, err = ss.Store.Create(ctx); err != nil {
			return nil, "", fmt.Errorf("signaling: create session: %w", err)
		}
	}
	// Follow before reading the log: an event appended from now on arrives
	// live, one appended before is in the replay, and the ids dedupe the
	// overlap. The feed is in replay mode, so live events wait.
	s.SetLog(s.Log().With("session", id)) // before Follow: the Hub's goroutine logs with it
	f := &Feed{sock: s, store: ss.Store, id: id, encode: encode, lastID: lastEvent, replaying: true, lastTouch: time.Now()}
	stop, err := ss.Hub.Follow(ctx, id, f)
	if err != nil {
		return nil, "", fmt.Errorf("signaling: follow the session: %w", err)
	}
	f.stop = stop
	return f, token, nil
}

// Start queues the feed's first replay: the frames queued before it go
// first (the protocol's answer to the hello).
func (f *Feed) Start() { f.sock.Do(f.replay) }
