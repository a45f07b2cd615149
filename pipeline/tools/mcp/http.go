package mcp

import (
	"net/http"
	"net/url"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// httpTransport is the Streamable HTTP transport to s.URL, with s.Headers,
// over an http.Transport of its own (closed with the link).
func httpTransport(s Server) (sdk.Transport, *http.Transport) {
	u, _ := url.Parse(s.URL) // checked by ParseConfig
	base := http.DefaultTransport.(*http.Transport).Clone()
	// No overall client timeout: the server's event stream stays open.
	// Calls have their own deadlines; pings find a dead server.
	client := &http.Client{Transport: headerTransport{base: base, host: u.Host, headers: s.Headers}}
	return &sdk.StreamableClientTransport{Endpoint: s.URL, HTTPClient: client}, base
}

// headerTransport adds the configured headers to requests for the
// endpoint's host only: a redirect elsewhere does not carry a token.
type headerTransport struct {
	base    http.RoundTripper
	host    string
	headers map[string]string
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if len(t.headers) == 0 || r.URL.Host != t.host {
		return t.base.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	for k, v := range t.headers {
		r.Header.Set(k, v)
	}
	return t.base.RoundTrip(r)
}
