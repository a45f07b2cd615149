package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/signaling/rtc"
)

// The README's configuration table must list every setting, with the
// right environment variable and default.
func TestREADMEListsEverySetting(t *testing.T) {
	if _, err := parseConfig(nil, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `-([a-z-]+)` \\| `([A-Z_]+)` \\|([^|]*)\\|")
	rows := map[string][2]string{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		rows[m[1]] = [2]string{m[2], strings.TrimSpace(m[3])}
	}
	for _, s := range settings {
		t.Run(s.flag, func(t *testing.T) {
			r, ok := rows[s.flag]
			delete(rows, s.flag)
			if !ok {
				t.Fatalf("README has no row for -%s", s.flag)
			}
			if r[0] != s.env {
				t.Fatalf("README says -%s is %s, the code says %s", s.flag, r[0], s.env)
			}
			if strings.HasPrefix(r[1], "`") && !sameDefault(strings.Trim(r[1], "`"), s.dflt) {
				t.Fatalf("README default of -%s is %s, the code's is %q", s.flag, r[1], s.dflt)
			}
		})
	}
	for f := range rows {
		t.Errorf("README lists -%s, which does not exist", f)
	}
}

// sameDefault compares as durations where both parse (30m = 30m0s).
func sameDefault(readme, code string) bool {
	a, errA := time.ParseDuration(readme)
	b, errB := time.ParseDuration(code)
	if errA == nil && errB == nil {
		return a == b
	}
	return readme == code
}

func TestEnvironmentAndFlags(t *testing.T) {
	env := map[string]string{
		"PARLEY_ADDR":        "127.0.0.1:9999",
		"PARLEY_LLM_SLOTS":   "3",
		"PARLEY_QUEUE_WAIT":  "ignored: not a setting",
		"LLM_BASE_URL":       "http://127.0.0.1:1/v1",
		"LLM_MODEL":          "m",
		"PARLEY_SESSION_TTL": "2m",
	}
	cfg, err := parseConfig([]string{"-llm-slots", "5"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:9999" || cfg.Slots != 5 || cfg.SessionTTL != 2*time.Minute || cfg.LLMModel != "m" {
		t.Fatalf("env then flags: %+v", cfg)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"bad duration", map[string]string{"PARLEY_SESSION_TTL": "soon"}, nil},
		{"bad number", map[string]string{"PARLEY_LLM_SLOTS": "many"}, nil},
		{"bad api", nil, []string{"-llm-api", "grpc"}},
		{"url without model", map[string]string{"LLM_BASE_URL": "http://127.0.0.1:1/v1"}, nil},
		{"tls certificate without key", map[string]string{"PARLEY_TLS_CERT": "cert.pem"}, nil},
		{"tls key without certificate", nil, []string{"-tls-key", "key.pem"}},
		{"negative retention", map[string]string{"PARLEY_RECORD_DIR": "rec", "PARLEY_RECORD_RETENTION": "-1h"}, nil},
		{"retention without recordings", nil, []string{"-record-retention", "720h"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestWebRTCSettings(t *testing.T) {
	env := map[string]string{
		"PARLEY_WEBRTC_ICE_SERVERS": "stun:127.0.0.1:3478, turn:alice:secret@127.0.0.1:3479",
		"PARLEY_WEBRTC_UDP_PORTS":   "40000-40100",
		"PARLEY_WEBRTC_INTERFACES":  "lo",
	}
	cfg, err := parseConfig(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	w, _ := cfg.webrtc()
	if len(w.ICEServers) != 2 || w.ICEServers[0].URLs[0] != "stun:127.0.0.1:3478" ||
		w.ICEServers[1].URLs[0] != "turn:127.0.0.1:3479" || w.ICEServers[1].Username != "alice" || w.ICEServers[1].Credential != "secret" {
		t.Fatalf("ICE servers %+v", w.ICEServers)
	}
	if w.PortMin != 40000 || w.PortMax != 40100 || len(w.Interfaces) != 1 || w.Interfaces[0] != "lo" {
		t.Fatalf("%+v", w)
	}
	if w.Loopback != rtc.LoopbackAuto {
		t.Fatalf("default loopback %v, want auto", w.Loopback)
	}
	for _, tc := range []struct {
		val  string
		want rtc.Loopback
	}{{"auto", rtc.LoopbackAuto}, {"on", rtc.LoopbackOn}, {"true", rtc.LoopbackOn}, {"off", rtc.LoopbackOff}, {"false", rtc.LoopbackOff}} {
		t.Run("loopback "+tc.val, func(t *testing.T) {
			cfg, err := parseConfig([]string{"-webrtc-loopback", tc.val}, func(string) string { return "" })
			if err != nil {
				t.Fatal(err)
			}
			if w, _ := cfg.webrtc(); w.Loopback != tc.want {
				t.Fatalf("%v, want %v", w.Loopback, tc.want)
			}
		})
	}
	if _, err := parseConfig(nil, func(k string) string {
		if k == "PARLEY_WEBRTC_LOOPBACK" {
			return "sometimes"
		}
		return ""
	}); err == nil || !strings.Contains(err.Error(), "use auto, on or off") {
		t.Fatalf("loopback sometimes: %v", err)
	}
	for _, bad := range []string{"40100-40000", "x-y", "40000", "0-10"} {
		t.Run(bad, func(t *testing.T) {
			if _, err := parseConfig(nil, func(k string) string {
				if k == "PARLEY_WEBRTC_UDP_PORTS" {
					return bad
				}
				return ""
			}); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestTrustedProxiesSetting(t *testing.T) {
	cfg, err := parseConfig(nil, func(k string) string {
		return map[string]string{"PARLEY_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8,fd00::/8"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(cfg.proxies) != "[127.0.0.1/32 10.0.0.0/8 fd00::/8]" {
		t.Fatalf("proxies %v", cfg.proxies)
	}
	if cfg, _ := parseConfig(nil, func(string) string { return "" }); len(cfg.proxies) != 0 {
		t.Fatalf("by default %v are trusted, want none", cfg.proxies)
	}
	for _, tc := range []struct {
		name  string
		env   map[string]string
		args  []string
		inErr string
	}{
		{"a bad CIDR", map[string]string{"PARLEY_TRUSTED_PROXIES": "10.0.0.0/8,10.0.0.0/40"}, nil, `-trusted-proxies: trusted proxy "10.0.0.0/40" is neither`},
		{"a host name", nil, []string{"-trusted-proxies", "proxy.internal"}, `"proxy.internal"`},
		{"the removed variable", map[string]string{"PARLEY_TRUST_PROXY": "true"}, nil, "-trusted-proxies (PARLEY_TRUSTED_PROXIES)"},
		{"the removed flag", nil, []string{"-trust-proxy"}, "are gone"},
		{"the removed flag with a value", nil, []string{"--trust-proxy=true"}, "are gone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.args, func(k string) string { return tc.env[k] })
			if err == nil || !strings.Contains(err.Error(), tc.inErr) {
				t.Fatalf("error %v, want one with %q", err, tc.inErr)
			}
		})
	}
}
