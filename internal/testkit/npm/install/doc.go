// Command install installs the npm projects named on its command line
// (testdata folders with a package.json and a package-lock.json) into
// the test cache of package npm, as the tests would, so that they run
// offline afterwards. `make deps` runs it. It owns nothing else; one
// goroutine.
package main
