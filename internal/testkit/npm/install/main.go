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
