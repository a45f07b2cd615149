// Package redistest starts a throwaway redis-server for tests.
//
// Tests in this repository talk to a real Redis, never a mock: Start runs
// redis-server on a free 127.0.0.1 port with persistence off and stops it
// when the test ends. When redis-server is missing the test is skipped on
// a developer's machine and fails under CI=true, so a CI run can never pass
// by skipping.
//
// Start is safe to call from parallel tests; each call gets its own server.
package redistest
