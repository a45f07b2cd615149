package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/parleyhq/parley/pipeline/event"
)

var (
	metadataScript = redis.NewScript(lua("metadata.lua"))
	appendScript   = redis.NewScript(fanoutLua + requestedLua + lua("append.lua"))
)

// SetMetadata replaces the session's metadata: what a front end knows of
// where the session comes from (a phone call's Twilio identifiers and
// custom parameters, say), for whoever reads the session later. It is
// kept in the meta hash's "md" field, as JSON, and is nothing the turns
// read.
func (s *Store) SetMetadata(ctx context.Context, id string, md map[string]string) error {
	b, err := json.Marshal(md)
	if err != nil {
		return fmt.Errorf("session: metadata: %w", err)
	}
	if err := metadataScript.Run(ctx, s.rdb, []string{s.metaKey(id)}, string(b)).Err(); err != nil {
		return scriptErr("metadata", err)
	}
	return nil
}

// Metadata returns the session's metadata (nil when none was set).
func (s *Store) Metadata(ctx context.Context, id string) (map[string]string, error) {
	b, err := s.rdb.HGet(ctx, s.metaKey(id), "md").Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("session: metadata: %w", err)
	}
	var md map[string]string
	if err := json.Unmarshal([]byte(b), &md); err != nil {
		return nil, fmt.Errorf("session: stored metadata: %w", err)
	}
	return md, nil
}

// AppendEvent stores an event that no turn's own script stores (a key
// the caller pressed: event.DTMF) in the session's log, and publishes it,
// as the other appends do. It returns the event's id.
func (s *Store) AppendEvent(ctx context.Context, id string, ev event.Event) (string, error) {
	body := event.Marshal(ev)
	res, err := appendScript.Run(ctx, s.rdb, []string{s.logKey(id), s.metaKey(id), s.Channel(id)},
		s.ttl, s.cfg.MaxEvents, s.pub, body, s.replica, s.keyOf(ctx)).StringSlice()
	if err != nil {
		s.lost(id)
		return "", scriptErr("append event", err)
	}
	if len(res) < 2 {
		return "", fmt.Errorf("session: append event: %d values from the script", len(res))
	}
	s.delivered(id, res[1], res[:1], body)
	return res[0], nil
}
