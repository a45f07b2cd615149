package signaling

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// clientIP is the request's client address. It is the TCP peer unless the
// peer is one of the trusted proxies: then the proxies' header is walked
// from its right end (the entry the nearest proxy wrote), skipping the
// addresses of trusted proxies, and the first other address is the
// client. Entries further left were written by parties we do not trust
// (the client itself, perhaps), so a client cannot pick its address by
// sending the header. An entry that is not an address (garbage, "unknown",
// an obfuscated name) stops the walk: the address before it, a trusted
// proxy's, is taken, as nothing beyond it can be believed.
//
// The header is X-Forwarded-For if the request has one (nginx, HAProxy,
// Envoy, Caddy and the cloud load balancers append to it), else the
// standard Forwarded (RFC 7239). A proxy that writes only Forwarded must
// remove a client's X-Forwarded-For, or the client could name itself.
func clientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := peerAddr(r.RemoteAddr)
	if !isTrusted(peer, trusted) {
		return peer
	}
	hops := forwardedHops(r.Header)
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			break
		}
		client = a
		if !isTrusted(a, trusted) {
			break
		}
	}
	return client
}

// peerAddr is the address of the TCP peer, from RemoteAddr ("ip:port").
// Anything else (a test's or a non-TCP listener's made-up string) is the
// invalid address, which no prefix contains; it prints as "invalid IP".
func peerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	a, _ := netip.ParseAddr(remote)
	return a.Unmap().WithZone("")
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedHops lists the addresses the proxies recorded, leftmost (the
// farthest from us) first, from every line of the header.
func forwardedHops(h http.Header) []string {
	if xff := h.Values("X-Forwarded-For"); len(xff) > 0 {
		var hops []string
		for _, line := range xff {
			for _, e := range strings.Split(line, ",") {
				hops = append(hops, strings.TrimSpace(e))
			}
		}
		return hops
	}
	var hops []string
	for _, line := range h.Values("Forwarded") {
		for _, elem := range splitQuoted(line, ',') {
			hops = append(hops, forwardedFor(elem))
		}
	}
	return hops
}

// forwardedFor is the value of an RFC 7239 element's for= parameter,
// unquoted; empty if it has none.
func forwardedFor(elem string) string {
	for _, pair := range splitQuoted(elem, ';') {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "for") {
			v = strings.TrimSpace(v)
			// A quoted address holds no escapes; anything else fails to
			// parse as an address, quoted or not.
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v
		}
	}
	return ""
}

// splitQuoted splits s at sep outside double-quoted strings.
func splitQuoted(s string, sep byte) []string {
	var parts []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quoted:
			i++ // the escaped character
		case s[i] == '"':
			quoted = !quoted
		case s[i] == sep && !quoted:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// parseHop reads one recorded address: an IP ("192.0.2.1", "2001:db8::1"),
// or with a port ("192.0.2.1:4711", "[2001:db8::1]:4711"), or a bracketed
// IPv6 address without one ("[2001:db8::1]", as Forwarded writes it).
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() {
			return a.WithZone(""), true
		}
	}
	return netip.Addr{}, false
}

// ParseTrustedProxies reads a list of proxy addresses and networks
// ("127.0.0.1", "10.0.0.0/8", "2001:db8::/32") for Config.TrustedProxies.
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if a, err := netip.ParseAddr(s); err == nil {
			a = a.Unmap().WithZone("")
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q is neither an IP address nor a CIDR network (e.g. 10.0.0.1, 10.0.0.0/8, fd00::/8)", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 { // ::ffff:10.0.0.0/104 is 10.0.0.0/8, as addresses are unmapped
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
