// Package jsonbytes writes JSON by hand on hot paths: the bytes
// encoding/json writes for the same values (its escaping of strings,
// HTML-safe, its form of numbers), without reflection and into the
// caller's buffer. What is written this way is held to encoding/json by
// the tests of its callers (byte for byte) and by this package's fuzz
// test.
//
// Every function is pure and goroutine-safe.
package jsonbytes
