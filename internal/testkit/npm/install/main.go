// Command install installs the npm projects named on its command line
// (testdata folders with a package.json and a package-lock.json) into
// the test cache of package npm, as the tests would, so that they run
// offline afterwards. `make deps` runs it.
package main

import (
	"fmt"
	"os"

	"github.com/parleyhq/parley/internal/testkit/npm"
)

func main() {
	for _, project := range os.Args[1:] {
		dir, err := npm.Install(project)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("npm project %s: %s\n", project, dir)
	}
}
