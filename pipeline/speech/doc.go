// Package speech declares what a voice call asks of speech providers: a
// recogniser per call that turns the caller's PCM into text (ASR,
// Recognizer), and a synthesiser that turns text into PCM as it goes
// (TTS). Providers implement them: pipeline/sphinx and pipeline/flite
// (offline), pipeline/openai (OpenAI-compatible servers).
//
// Only interfaces live here; each says which calls are goroutine-safe.
package speech
