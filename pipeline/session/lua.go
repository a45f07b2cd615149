package session

import (
	"embed"
)

//go:embed lua/*.lua
var luaFiles embed.FS

// lua is the source of an embedded script.
func lua(name string) string {
	b, err := luaFiles.ReadFile("lua/" + name)
	if err != nil {
		panic(err) // embedded at build time: cannot happen
	}
	return string(b)
}
