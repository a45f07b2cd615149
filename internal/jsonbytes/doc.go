// Package jsonbytes reads and writes JSON by hand on hot paths, as
// encoding/json would, without reflection. Writing: the bytes
// encoding/json writes for the same values (its escaping of strings,
// HTML-safe, its form of numbers), into the caller's buffer. Reading: a
// Scanner walks JSON text a value at a time, allocating only the strings
// it returns; it reads a subset of what encoding/json reads (no escaped
// object key, for one) and reports false on the rest, so that a caller
// reads the shapes it knows by hand and leaves any other to
// encoding/json, which also says what is wrong. What a Scanner reads it
// reads as encoding/json does (FuzzScanner; and each caller's own fuzz
// test of its shape).
//
// The functions are pure and goroutine-safe; a Scanner is used by one
// goroutine.
package jsonbytes
