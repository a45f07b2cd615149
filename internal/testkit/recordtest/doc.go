// Package recordtest reads back what pipeline/record wrote, for the tests
// of front ends that record calls: the stereo WAV, its transcript, where
// the audio is loud, and where a stretch of audio lies in it. Its
// functions are safe for concurrent use; a Closing's Close is called once
// per recording, by the call.
package recordtest
