package config

import (
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
)

// HTTPUpload configures the XEP-0363 HTTP File Upload service
// (modules/upload): a service on a domain of its own that hands out upload
// slots over XMPP, and an HTTP listener of its own that takes the files
// (PUT) and serves them (GET). It is off by default because it opens a
// listener that the operator has to expose, and stores what users send on
// the server's disk.
type HTTPUpload struct {
	// Enabled runs the service.
	Enabled bool `yaml:"enabled"`
	// Domain is the service's domain; empty: upload. and the server's
	// domain.
	Domain string `yaml:"domain"`
	// Name is the service's name in disco.
	Name string `yaml:"name"`
	// Listen is the TCP address of the HTTP listener, host:port.
	Listen string `yaml:"listen"`
	// TLS serves HTTPS with the server's certificate (tls.*). Off, the
	// listener speaks plain HTTP, for an ingress or proxy that terminates
	// TLS (XEP-0363 requires the URLs clients see to be https://).
	TLS bool `yaml:"tls"`
	// PublicURL is the base of the URLs put in slots, http:// or https://
	// with an optional path (what a proxy routes to the listener; the
	// listener serves under that path). Empty: the scheme of TLS, the
	// service's domain and the listener's port.
	PublicURL string `yaml:"public_url"`
	// Path is the folder of the files and their metadata. Empty: upload in
	// storage.path; a relative path is taken within storage.path.
	Path string `yaml:"path"`
	// MaxFileBytes bounds one file (file-too-large past it); it is
	// advertised in disco as max-file-size.
	MaxFileBytes int64 `yaml:"max_file_bytes"`
	// QuotaPerUserBytes bounds what one account stores at once, its open
	// slots included (resource-constraint past it); 0: no bound.
	QuotaPerUserBytes int64 `yaml:"quota_per_user_bytes"`
	// QuotaTotalBytes bounds what the service stores for everyone, open
	// slots included (resource-constraint past it); 0: no bound but the
	// free-space floor, limits.min_free_disk_bytes, which applies anyway.
	QuotaTotalBytes int64 `yaml:"quota_total_bytes"`
	// ExpireAfter is how long a file is kept after its upload; expired
	// files are removed in the background. 0 keeps them until their
	// account is deleted.
	ExpireAfter Duration `yaml:"expire_after"`
	// SlotLifetime is how long a slot's PUT URL takes an upload.
	SlotLifetime Duration `yaml:"slot_lifetime"`
	// MaxPendingSlots bounds the slots one account holds without having
	// uploaded to them (resource-constraint past it).
	MaxPendingSlots int `yaml:"max_pending_slots"`
}

// Defaults of the http_upload section.
const (
	DefaultUploadListen       = "127.0.0.1:5281"
	DefaultUploadMaxFileBytes = 100 << 20
	DefaultUploadUserQuota    = 1 << 30
	DefaultUploadTotalQuota   = 10 << 30
	DefaultUploadExpireAfter  = 7 * 24 * time.Hour
	DefaultUploadSlotLifetime = 5 * time.Minute
	DefaultUploadPendingSlots = 20
)

// DefaultHTTPUpload is the http_upload section's default.
func DefaultHTTPUpload() HTTPUpload {
	return HTTPUpload{
		Name:              "HTTP File Upload",
		Listen:            DefaultUploadListen,
		MaxFileBytes:      DefaultUploadMaxFileBytes,
		QuotaPerUserBytes: DefaultUploadUserQuota,
		QuotaTotalBytes:   DefaultUploadTotalQuota,
		ExpireAfter:       Duration(DefaultUploadExpireAfter),
		SlotLifetime:      Duration(DefaultUploadSlotLifetime),
		MaxPendingSlots:   DefaultUploadPendingSlots,
	}
}

// ServiceDomain is the service's domain for the server domain.
func (u HTTPUpload) ServiceDomain(domain string) string {
	if u.Domain != "" {
		return u.Domain
	}
	return "upload." + domain
}

// Dir is the folder of the files for the storage folder storage.
func (u HTTPUpload) Dir(storage string) string {
	switch {
	case u.Path == "":
		return filepath.Join(storage, "upload")
	case filepath.IsAbs(u.Path):
		return u.Path
	}
	return filepath.Join(storage, u.Path)
}

// validate checks the section; bad collects what is wrong. others are the
// other listeners' addresses by key, which the upload listener must not
// share.
func (u *HTTPUpload) validate(domain string, others map[string]string, bad func(format string, args ...any)) {
	if !u.Enabled {
		return
	}
	d := u.ServiceDomain(domain)
	if j, err := jid.New("", d, ""); err != nil || strings.ContainsAny(d, "@/") {
		bad("http_upload.domain %q: not a domain", d)
	} else if j.Domainpart() == domain {
		bad("http_upload.domain %q: the server's own domain; the service needs one of its own (upload.%s)", d, domain)
	}
	if _, _, err := net.SplitHostPort(u.Listen); err != nil {
		bad("http_upload.listen %q: %v", u.Listen, err)
	} else {
		for _, k := range slices.Sorted(maps.Keys(others)) {
			if sameListener(u.Listen, others[k]) {
				bad("http_upload.listen %q: the port of %s %q; the upload listener needs a port of its own", u.Listen, k, others[k])
			}
		}
	}
	if s := u.PublicURL; s != "" {
		p, err := url.Parse(s)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.RawQuery != "" || p.Fragment != "" || p.User != nil {
			bad("http_upload.public_url %q: must be an http:// or https:// URL without user, query or fragment", s)
		}
	}
	if u.MaxFileBytes < 1 {
		bad("http_upload.max_file_bytes %d: must be positive", u.MaxFileBytes)
	}
	for _, q := range []struct {
		name string
		v    int64
	}{{"quota_per_user_bytes", u.QuotaPerUserBytes}, {"quota_total_bytes", u.QuotaTotalBytes}} {
		if q.v != 0 && q.v < u.MaxFileBytes {
			bad("http_upload.%s %d: must be 0 (no bound) or at least max_file_bytes %d", q.name, q.v, u.MaxFileBytes)
		}
	}
	if u.ExpireAfter < 0 {
		bad("http_upload.expire_after %s: must not be negative (0 keeps files)", u.ExpireAfter.D())
	}
	if d := u.SlotLifetime.D(); d < time.Second || d > 24*time.Hour {
		bad("http_upload.slot_lifetime %s: must be between 1s and 24h", d)
	}
	if u.MaxPendingSlots < 1 {
		bad("http_upload.max_pending_slots %d: must be positive", u.MaxPendingSlots)
	}
}

// sameListener reports whether the listeners at a and b (host:port) would
// take the same port: the same port, other than 0, on the same host or on
// all addresses.
func sameListener(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb || pa == "0" {
		return false
	}
	all := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || all(ha) || all(hb)
}
