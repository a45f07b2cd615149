// Package local is the offline responder: a deterministic stand-in for a
// language model, so that a demo runs with no keys and no downloads. It
// greets, tells the time and the date, lists what it can do, and repeats
// anything else, and it says plainly that it is not a language model.
//
// It calls tools, so that the offline demo shows them, but it picks them
// by keywords, not by understanding. When the last user message asks the
// time or the date (time, clock, date, day, today) and a tool whose name
// holds "time" or "clock" is offered, it calls that tool, with the place
// named after "in" as its timezone, location or city when its schema has
// such a string property, else with {}. The weather (weather,
// temperature, forecast, rain, raining) calls a tool named with
// "weather", with {"location": the place after "in", or "here"} (or the
// schema's city, place or first required string property). A message
// that starts with "echo" calls a tool named with "echo" with the rest as
// its message (or text, input, value). Echo comes before the weather, the
// weather before the time. tool_choice "none" calls nothing; "required"
// or a tool's name calls that tool (the first offered) even when no word
// asks for it.
//
// Before a call it says "Let me check."; the call's id is call_<n>, n
// counting the calls in the conversation, so replies are the same on
// every replica. Once this turn has called (an assistant message with
// tool calls after the last user message), it never calls again: it
// answers with the results, a sentence each in the order of the calls
// ("It is 3:04 PM." for a time tool's short answer with digits, else
// "The <tool> tool says: <output>.", at most 300 characters of it).
//
// Responder is safe for concurrent use.
package local
