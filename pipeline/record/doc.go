// Package record writes call recordings: each call as one stereo WAV file,
// the caller on the left and the bot on the right, with its transcript
// beside it as JSON lines, and deletes old ones (Config.Retention).
//
// Files, for a call of session S that started at T (UTC):
//
//	<Dir>/<YYYY-MM-DD>/<S>-<YYYYMMDDTHHMMSS.mmmZ>.wav    16-bit PCM, stereo, at the caller's rate
//	<Dir>/<YYYY-MM-DD>/<S>-<YYYYMMDDTHHMMSS.mmmZ>.jsonl  one line a turn, times in seconds from T
//
// Why WAV: it costs no encoder per call (recording runs on the replica's
// CPU, beside the calls), every tool reads it, and a file written as it
// goes stays readable after a crash: the header's sizes are rewritten at
// each write, about every 100 ms, so a crash loses only what was in
// memory: the window and a chunk (writer.go), the last half second or so. The price is size: 64 KB a second at 16 kHz
// (browser calls), 32 KB at 8 kHz (phone calls); Ogg/Opus would be about
// ten times smaller, a later option. Nothing is fsynced: a process crash
// loses nothing the kernel was given, an OS crash what it had not written.
//
// Audio is placed by time: a frame goes at the time since the call's start
// at which it arrived (the caller's) or was sent (the bot's), or right
// after its channel's previous frame if that is later or within
// placementSlack of it, so that bursts do not overlap, jitter makes no
// holes and true gaps become silence. Both channels are interleaved in a
// short window in memory (window) before they are written. A barge-in
// silences the bot's frames that were sent but never played, in the
// buffer or already in the file: the right channel stops where the caller
// heard it stop.
//
// A Recording's methods never block: they queue for the recording's own
// goroutine, which alone touches its files; past Config.Queue frames the
// oldest is dropped and counted. File writes have no deadline (a local
// file's cannot): a stalled disk stalls that goroutine only. Recorder's methods are safe for
// concurrent use; so are a Recording's.
package record
