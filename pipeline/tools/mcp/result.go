package mcp

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// render turns a tool's result into text for the model, at most max
// bytes of it, with a note when it was cut. Text is given as it is;
// other content is described (an image, say, as "[image image/png,
// 1.4 KB]"), since the model gets text only.
func render(res *sdk.CallToolResult, max int) string {
	parts := make([]string, 0, len(res.Content))
	for _, c := range res.Content {
		parts = append(parts, describe(c))
	}
	if len(parts) == 0 && res.StructuredContent != nil {
		if b, err := json.Marshal(res.StructuredContent); err == nil {
			parts = append(parts, string(b))
		}
	}
	return capText(strings.Join(parts, "\n"), max)
}

func describe(c sdk.Content) string {
	switch c := c.(type) {
	case *sdk.TextContent:
		return c.Text
	case *sdk.ImageContent:
		return fmt.Sprintf("[image %s, %s]", orUnknown(c.MIMEType), size(len(c.Data)))
	case *sdk.AudioContent:
		return fmt.Sprintf("[audio %s, %s]", orUnknown(c.MIMEType), size(len(c.Data)))
	case *sdk.ResourceLink:
		return fmt.Sprintf("[resource link %s: %s]", c.URI, firstOf(c.Title, c.Name, c.Description))
	case *sdk.EmbeddedResource:
		return embedded(c.Resource)
	default:
		return fmt.Sprintf("[%T content]", c)
	}
}

// embedded gives a text resource's text, and describes a binary one.
func embedded(r *sdk.ResourceContents) string {
	switch {
	case r == nil:
		return "[empty resource]"
	case r.Blob != nil:
		return fmt.Sprintf("[resource %s, %s, %s]", r.URI, orUnknown(r.MIMEType), size(len(r.Blob)))
	default:
		return fmt.Sprintf("[resource %s]\n%s", r.URI, r.Text)
	}
}

// capText cuts s to at most max bytes, at a character boundary, and says
// how much was left out.
func capText(s string, max int) string {
	if len(s) <= max {
		return s
	}
	note := fmt.Sprintf("\n[output cut: the first %d of %d bytes]", max, len(s))
	keep := max - len(note)
	if keep < 0 {
		keep = 0
	}
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return s[:keep] + note
}

func size(n int) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d bytes", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	}
}

func orUnknown(mime string) string {
	if mime == "" {
		return "of unknown type"
	}
	return mime
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
