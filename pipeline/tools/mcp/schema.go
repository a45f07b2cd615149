package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/jsonschema-go/jsonschema"
)

// maxArguments caps the arguments of one call, as the model wrote them.
const maxArguments = 1 << 20

// ErrInvalidArguments: the arguments are not a JSON object, or do not
// match the tool's input schema; the tool was not called.
var ErrInvalidArguments = errors.New("invalid arguments")

// schema is a tool's input schema: as offered to the model, and compiled
// for validation (nil when the validator does not understand it).
type schema struct {
	params   json.RawMessage
	resolved *jsonschema.Resolved
}

// compile prepares a tool's input schema. A schema that cannot be
// compiled is still offered; its calls are then only checked to be a
// JSON object, and the server checks the rest. The returned error says
// why, for the log.
func compile(input any) (schema, error) {
	if input == nil {
		return schema{params: json.RawMessage(`{"type":"object","properties":{}}`)}, errors.New("no input schema")
	}
	b, err := json.Marshal(input)
	if err != nil {
		return schema{params: json.RawMessage(`{"type":"object","properties":{}}`)}, err
	}
	s := schema{params: withoutSchemaKey(b)}
	var js jsonschema.Schema
	if err := json.Unmarshal(b, &js); err != nil {
		return s, err
	}
	// No loader: a remote $ref is an error, never a fetch.
	s.resolved, err = js.Resolve(nil)
	return s, err
}

// withoutSchemaKey drops the top-level "$schema" key: it names the draft
// for a validator, model APIs need no such key, and some refuse it.
func withoutSchemaKey(b []byte) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return b
	}
	if _, ok := m["$schema"]; !ok {
		return b
	}
	delete(m, "$schema")
	out, err := json.Marshal(m)
	if err != nil {
		return b
	}
	return out
}

// check parses arguments and validates them against the schema.
func (s schema) check(arguments json.RawMessage) (json.RawMessage, error) {
	if len(arguments) > maxArguments {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidArguments, len(arguments), maxArguments)
	}
	arguments = bytes.TrimSpace(arguments)
	if len(arguments) == 0 {
		arguments = json.RawMessage("{}") // a model's way of saying "no arguments"
	}
	var v any
	if err := json.Unmarshal(arguments, &v); err != nil {
		return nil, fmt.Errorf("%w: not JSON: %v", ErrInvalidArguments, err)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("%w: want a JSON object, got %s", ErrInvalidArguments, kind(v))
	}
	if s.resolved != nil {
		if err := s.resolved.Validate(v); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidArguments, err)
		}
	}
	return arguments, nil
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}
