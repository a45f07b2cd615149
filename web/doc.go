// Package web holds the demo page, embedded in the binary so that the
// server needs no JavaScript build step and no files beside it. Three
// plain modules: client.js speaks the protocol (the socket, hello and
// resume, de-duplication, the reconnect policy; no DOM), call.js the
// call's media (WebRTC, or Opus over the socket, and the move from one to
// the other), app.js the page.
//
// Handler is safe for concurrent use.
package web
