// Package npm installs the npm projects that tests run (real programs
// that nobody here wrote, such as an MCP server), pinned by their
// package-lock.json.
//
// A project is a folder with a package.json and a package-lock.json,
// kept in a testdata folder of the package whose tests use it. Install
// runs `npm ci` for it once, into a cache outside the repository:
// os.UserCacheDir()/parley/npm/<sha256 of package.json and
// package-lock.json>. A marker file written last says the install is
// whole; with the marker there, Install neither runs npm nor needs the
// network, so tests run offline once the cache holds the project. A
// changed lockfile is a new folder; old ones are left for the user to
// delete (they are small and harmless).
//
// npm runs with --ignore-scripts: no package's install script runs, so
// an install only unpacks what the lockfile names and checks its
// integrity hashes.
//
// The install folder is built under a temporary name and renamed into
// place, so test binaries that install the same project at once (go test
// runs packages in parallel) each end with the same whole folder.
//
// Install and Bin are safe for concurrent use. `make deps` runs the
// program in ./install over the repository's projects, so that the tests
// find them cached.
package npm
