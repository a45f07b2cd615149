// Package web holds the demo page, embedded in the binary so that the
// server needs no JavaScript build step and no files beside it.
//
// Handler is safe for concurrent use.
package web
