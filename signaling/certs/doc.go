// Package certs provides the server's TLS certificate, reloaded from its
// PEM files without a restart: a Reloader loads the certificate and key
// once (New fails on an unreadable or mismatched pair, so a bad setting
// stops the process before it listens), hands the current pair to every
// TLS handshake (GetCertificate, for tls.Config), and loads the files
// again on Reload (cmd/parley calls it on SIGHUP) and when Run sees them
// change (their size, modification time or inode, checked every few
// seconds; certbot's renewals and a deploy's rename both show). A new
// pair that does not load is logged and the old one stays in use; the
// next change of the files is tried again.
//
// Handshakes that began before a reload finish with the old certificate,
// and established connections are not touched: TLS checks the
// certificate only at the handshake.
//
// A Reloader's methods are safe for concurrent use. Run returns when its
// context ends.
package certs
