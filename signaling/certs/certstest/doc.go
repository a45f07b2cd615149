// Package certstest makes self-signed TLS certificates for tests: each for
// 127.0.0.1, ::1, localhost and any names asked for, with a fresh ECDSA
// P-256 key and a random serial, written as the PEM files a server is
// given.
//
// Its functions are safe for concurrent use; each writes only the files
// it is given.
package certstest
