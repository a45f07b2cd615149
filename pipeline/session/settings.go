package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/parleyhq/parley/pipeline/llm"
)

// Settings are a session's own settings, stored with it, so that whichever
// replica runs a turn, or takes it over, has them. A zero field means the
// server's default. Front ends set them (the OpenAI Realtime protocol's
// session.update, the Parley protocol's hello); a session that sets none
// has the server's.
type Settings struct {
	Instructions  string         `json:"instructions,omitempty"` // the system prompt
	Voice         string         `json:"voice,omitempty"`        // a voice of the synthesiser
	Modalities    []string       `json:"modalities,omitempty"`   // what replies are: "text", "audio"
	TurnDetection *TurnDetection `json:"turn_detection,omitempty"`
	// Tools are the tools the client runs itself (it answers their calls).
	Tools []llm.Tool `json:"tools,omitempty"`
	// ServerTools selects the server's own tools (MCP servers') that the
	// model is offered: nil, all of them; else only those it names, none
	// when it is empty (each a tool's name as the model sees it, or a
	// server's name and ".*": see pipeline/tools).
	ServerTools *[]string `json:"server_tools,omitempty"`
	// ToolChoice: "auto", "none", "required" or a tool's name; "": auto.
	ToolChoice string `json:"tool_choice,omitempty"`
	// EndAtClientTools: a reply that calls the client's tools ends there;
	// the results, when they come, are for the next response the client
	// asks for (the OpenAI Realtime protocol). Otherwise (the Parley
	// protocol) the reply goes on by itself once they are all in.
	EndAtClientTools bool `json:"end_at_client_tools,omitempty"`
	// Transcribe: the client wants the caller's words reported as they are
	// recognised (they are always recognised: the model reads text).
	Transcribe bool `json:"transcribe,omitempty"`
}

// TurnDetection says how a call decides that the caller's turn ended.
type TurnDetection struct {
	// Mode: "vad" (the voice activity detector's silence), "semantic"
	// (the silence chosen from what was said), or "manual" (the client
	// says when); empty: the server's default.
	Mode      string `json:"mode,omitempty"`
	SilenceMs int    `json:"silence_ms,omitempty"` // the end-of-turn silence; 0: the server's
	PrefixMs  int    `json:"prefix_ms,omitempty"`  // audio kept from before speech starts; 0: the server's
	// CreateResponse and InterruptResponse: whether a turn's end asks for a
	// reply, and whether the caller's voice cuts one off; nil: yes.
	CreateResponse    *bool  `json:"create_response,omitempty"`
	InterruptResponse *bool  `json:"interrupt_response,omitempty"`
	Eagerness         string `json:"eagerness,omitempty"` // for "semantic": low, medium, high, auto
}

var settingsScript = redis.NewScript(lua("settings.lua"))

// SetSettings replaces the session's settings.
func (s *Store) SetSettings(ctx context.Context, id string, set Settings) error {
	if set.ServerTools != nil && *set.ServerTools == nil {
		set.ServerTools = &[]string{} // an empty selection, not "all" (JSON null)
	}
	b, err := json.Marshal(set)
	if err != nil {
		return fmt.Errorf("session: settings: %w", err)
	}
	if err := settingsScript.Run(ctx, s.rdb, []string{s.metaKey(id)}, string(b)).Err(); err != nil {
		if strings.Contains(err.Error(), "NOSESSION") {
			return ErrNotFound
		}
		return fmt.Errorf("session: settings: %w", err)
	}
	return nil
}

// Settings returns the session's settings (zero when none were set).
func (s *Store) Settings(ctx context.Context, id string) (Settings, error) {
	b, err := s.rdb.HGet(ctx, s.metaKey(id), "settings").Result()
	if errors.Is(err, redis.Nil) {
		return Settings{}, nil
	}
	if err != nil {
		return Settings{}, fmt.Errorf("session: settings: %w", err)
	}
	return parseSettings(b)
}

func parseSettings(b string) (Settings, error) {
	var set Settings
	if b == "" {
		return set, nil
	}
	if err := json.Unmarshal([]byte(b), &set); err != nil {
		return set, fmt.Errorf("session: stored settings: %w", err)
	}
	return set, nil
}
