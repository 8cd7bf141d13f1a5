package s2s

// certs.go: the peer certificate checks of RFC 6120 §13.7.2 and XEP-0178,
// with the identity rules of RFC 6125 §6, and the tls.Config values of
// s2s streams (STARTTLS, RFC 6120 §5; direct TLS, XEP-0368).

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"mellium.im/xmpp/jid"
)

// Object identifiers read from a certificate.
var (
	// oidSubjectAltName is the subjectAltName extension (RFC 5280 §4.2.1.6).
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	// oidXmppAddr is id-on-xmppAddr (RFC 6120 §13.7.1.4).
	oidXmppAddr = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 5}
	// oidSRVName is id-on-dnsSRV (RFC 4985).
	oidSRVName = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 7}
)

// srvServer is the service part of the SRV-ID of an XMPP server (RFC 6120
// §13.7.1.2, RFC 6125 §6.5.1).
const srvServer = "_xmpp-server."

// ALPNServer is the ALPN protocol name of direct-TLS s2s (XEP-0368).
const ALPNServer = "xmpp-server"

// CertStatus says how a peer's certificate stands for a domain.
type CertStatus int

// The outcomes of verifying a certificate, from worst to best. The zero
// value is not CertValid.
const (
	// CertMissing: the peer presented no certificate.
	CertMissing CertStatus = iota
	// CertChainInvalid: the chain does not lead to a trusted CA, or is
	// expired, or is for neither TLS servers nor TLS clients (serverAuth,
	// clientAuth).
	CertChainInvalid
	// CertNameMismatch: the chain is trusted, but none of the
	// certificate's identities is the domain.
	CertNameMismatch
	// CertValid: the chain is trusted and the certificate names the
	// domain, which SASL EXTERNAL may then authenticate (XEP-0178 §3).
	CertValid
)

var statusNames = [...]string{CertMissing: "no certificate", CertChainInvalid: "chain invalid", CertNameMismatch: "name mismatch", CertValid: "valid"}

// String returns a short name of s, for logs and the operator command.
func (s CertStatus) String() string {
	if s < 0 || int(s) >= len(statusNames) {
		return fmt.Sprintf("CertStatus(%d)", int(s))
	}
	return statusNames[s]
}

// CertIdentity is a kind of identifier in a certificate that may name an
// XMPP server (a presented identifier, RFC 6125 §1.8).
type CertIdentity int

// The identities a certificate may name a server with. The common name
// (CN-ID) is not one of them: it is never read, with subjectAltNames or
// without.
const (
	// IdentityNone: nothing matched.
	IdentityNone CertIdentity = iota
	// IdentityDNS is a DNS-ID, a subjectAltName dNSName, possibly with a
	// wildcard as its whole left-most label.
	IdentityDNS
	// IdentitySRV is an SRV-ID, an id-on-dnsSRV otherName
	// `_xmpp-server.<domain>` (RFC 4985).
	IdentitySRV
	// IdentityXmppAddr is an id-on-xmppAddr otherName holding the domain
	// (RFC 6120 §13.7.1.4).
	IdentityXmppAddr
)

var identityNames = [...]string{IdentityNone: "none", IdentityDNS: "DNS-ID", IdentitySRV: "SRV-ID", IdentityXmppAddr: "XmppAddr"}

// String returns the RFC's name of i.
func (i CertIdentity) String() string {
	if i < 0 || int(i) >= len(identityNames) {
		return fmt.Sprintf("CertIdentity(%d)", int(i))
	}
	return identityNames[i]
}

// CertResult is the outcome of verifying a peer's certificate for a
// domain. The stream decides with it: a valid result lets the peer
// authenticate with SASL EXTERNAL (and an outbound stream use it); any
// other leads to dialback, or to refusing the peer when
// s2s.require_valid_certificates is set.
type CertResult struct {
	// Status is the outcome.
	Status CertStatus
	// Domain is the domain checked, as the caller gave it.
	Domain string
	// Identity is the kind of identifier that named the domain, and Name
	// that identifier as the certificate has it (such as "*.a.test"),
	// when Status is CertValid.
	Identity CertIdentity
	Name     string
	// Chains are the verified chains, leaf first, when the chain is
	// trusted (CertValid or CertNameMismatch).
	Chains [][]*x509.Certificate
	// Err says why the result is not CertValid, and is nil when it is.
	// For CertChainInvalid it wraps crypto/x509's error
	// (x509.UnknownAuthorityError, x509.CertificateInvalidError, ...).
	Err error
}

// Valid reports whether the certificate is trusted and names the domain.
func (r CertResult) Valid() bool { return r.Status == CertValid }

// String describes r in one line, for logs.
func (r CertResult) String() string {
	if r.Status == CertValid {
		return fmt.Sprintf("valid for %s (%s %s)", r.Domain, r.Identity, r.Name)
	}
	if r.Err != nil {
		return r.Status.String() + ": " + r.Err.Error()
	}
	return r.Status.String()
}

// CertVerifier checks the certificates of peer servers. It is safe for
// concurrent use; to trust other CAs (a reloaded ca_file), make another.
type CertVerifier struct {
	// Roots are the trusted CAs; nil means the system's.
	Roots *x509.CertPool
	// Now is the time certificates are checked at; nil means time.Now.
	Now func() time.Time
}

// NewCertVerifier returns a CertVerifier that trusts the CA certificates
// of the PEM file caFile (s2s.ca_file), or the system's roots when caFile
// is empty.
func NewCertVerifier(caFile string) (*CertVerifier, error) {
	if caFile == "" {
		return &CertVerifier{}, nil
	}
	pool, err := LoadCAFile(caFile)
	if err != nil {
		return nil, err
	}
	return &CertVerifier{Roots: pool}, nil
}

// LoadCAFile reads the PEM certificates of path into a pool. A file that
// holds no certificate, or one that does not parse, is an error.
func LoadCAFile(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("s2s: read ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("s2s: ca_file %s: certificate %d: %w", path, n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("s2s: ca_file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// VerifyPeer verifies the certificate a peer presented on a TLS connection
// for domain: on an inbound stream, the 'from' of the stream header,
// known only after the handshake; on an outbound stream, the domain
// connected to.
func (v *CertVerifier) VerifyPeer(domain string, cs tls.ConnectionState) CertResult {
	return v.Verify(domain, cs.PeerCertificates)
}

// Verify verifies chain, the leaf first and then the intermediates the
// peer sent, for domain: the chain against the trusted CAs, for serverAuth
// or clientAuth (public CAs are dropping clientAuth, and a server that
// initiates a stream is a TLS client), then the domain against the leaf's
// DNS-IDs, SRV-IDs and XmppAddrs (RFC 6125 §6, RFC 6120 §13.7.2.1).
func (v *CertVerifier) Verify(domain string, chain []*x509.Certificate) CertResult {
	r := CertResult{Domain: domain}
	chains, names, err := v.verifyChain(chain)
	switch {
	case len(chain) == 0 || chain[0] == nil:
		r.Status, r.Err = CertMissing, errors.New("s2s: the peer presented no certificate")
		return r
	case chains == nil:
		r.Status, r.Err = CertChainInvalid, err
		return r
	}
	r.Chains = chains
	if err != nil {
		r.Status, r.Err = CertNameMismatch, err
		return r
	}
	ref, err := referenceDomain(domain)
	if err != nil {
		r.Status, r.Err = CertNameMismatch, err
		return r
	}
	id, name := names.match(ref)
	if id == IdentityNone {
		r.Status, r.Err = CertNameMismatch, fmt.Errorf("s2s: certificate is not for %s: it names %s", domain, names)
		return r
	}
	if id != IdentityDNS && !slices.ContainsFunc(chains, func(c []*x509.Certificate) bool { return constrained(c, ref) }) {
		// crypto/x509 applied the CAs' DNS name constraints to the
		// dNSNames only; an otherName must not escape them.
		r.Status, r.Err = CertNameMismatch, fmt.Errorf("s2s: certificate names %s as %s %q, outside its CA's name constraints", domain, id, name)
		return r
	}
	r.Status, r.Identity, r.Name = CertValid, id, name
	return r
}

// verifyChain verifies chain against the trusted CAs and reads the leaf's
// names. It returns nil chains when the chain is not trusted, and chains
// with an error when the leaf's names do not parse.
func (v *CertVerifier) verifyChain(chain []*x509.Certificate) ([][]*x509.Certificate, CertNames, error) {
	if len(chain) == 0 || chain[0] == nil {
		return nil, CertNames{}, errors.New("s2s: the peer presented no certificate")
	}
	leaf := chain[0]
	names, nameErr := ParseCertNames(leaf)
	if nameErr == nil {
		// crypto/x509 marks a critical subjectAltName with otherNames
		// only (a certificate with an empty subject, RFC 5280 §4.2.1.6)
		// as unhandled, and Verify refuses it; ParseCertNames handled it.
		if i := slices.IndexFunc(leaf.UnhandledCriticalExtensions, oidSubjectAltName.Equal); i >= 0 {
			c := *leaf
			c.UnhandledCriticalExtensions = slices.Delete(slices.Clone(leaf.UnhandledCriticalExtensions), i, i+1)
			leaf = &c
		}
	}
	opts := x509.VerifyOptions{
		Roots:         v.Roots,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if v.Now != nil {
		opts.CurrentTime = v.Now()
	}
	for _, c := range chain[1:] {
		if c != nil {
			opts.Intermediates.AddCert(c)
		}
	}
	chains, err := leaf.Verify(opts)
	if err != nil {
		return nil, names, fmt.Errorf("s2s: certificate chain: %w", err)
	}
	return chains, names, nameErr
}

// CertNames are the identities a certificate presents for an XMPP server.
type CertNames struct {
	// DNS are the dNSName subjectAltNames, as crypto/x509 reads them.
	DNS []string
	// SRV are the id-on-dnsSRV otherNames of any service, such as
	// "_xmpp-server.a.test".
	SRV []string
	// XmppAddr are the id-on-xmppAddr otherNames.
	XmppAddr []string
}

// String lists the names, for error messages.
func (n CertNames) String() string {
	var parts []string
	for _, g := range []struct {
		kind  CertIdentity
		names []string
	}{{IdentityDNS, n.DNS}, {IdentitySRV, n.SRV}, {IdentityXmppAddr, n.XmppAddr}} {
		for _, name := range g.names {
			parts = append(parts, fmt.Sprintf("%s %q", g.kind, name))
		}
	}
	if len(parts) == 0 {
		return "no DNS-ID, SRV-ID or XmppAddr"
	}
	return strings.Join(parts, ", ")
}

// ParseCertNames reads the identities of cert. crypto/x509 reads the
// dNSNames but skips otherNames, so the subjectAltName extension is parsed
// here (RFC 5280 §4.2.1.6):
//
//	GeneralNames ::= SEQUENCE OF GeneralName
//	GeneralName  ::= CHOICE { otherName [0] IMPLICIT OtherName, ..., dNSName [2] IA5String, ... }
//	OtherName    ::= SEQUENCE { type-id OBJECT IDENTIFIER, value [0] EXPLICIT ANY DEFINED BY type-id }
//
// An otherName counts by its OID, never by the type of its value alone: an
// XmppAddr is id-on-xmppAddr with a UTF8String, an SRV-ID id-on-dnsSRV with
// an IA5String. One of those OIDs with a value of another type is skipped;
// a subjectAltName that is not well-formed DER is an error.
func ParseCertNames(cert *x509.Certificate) (CertNames, error) {
	n := CertNames{DNS: cert.DNSNames}
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		if err := n.parseOtherNames(ext.Value); err != nil {
			return n, fmt.Errorf("s2s: certificate subjectAltName: %w", err)
		}
	}
	return n, nil
}

func (n *CertNames) parseOtherNames(der []byte) error {
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(der, &seq)
	switch {
	case err != nil:
		return err
	case len(rest) != 0:
		return errors.New("trailing data")
	case seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound:
		return errors.New("not a SEQUENCE")
	}
	for b := seq.Bytes; len(b) > 0; {
		var gn asn1.RawValue
		if b, err = asn1.Unmarshal(b, &gn); err != nil {
			return err
		}
		if gn.Class != asn1.ClassContextSpecific {
			return fmt.Errorf("GeneralName of class %d", gn.Class)
		}
		if gn.Tag != 0 {
			continue // dNSName and the others: crypto/x509 reads them
		}
		if !gn.IsCompound {
			return errors.New("otherName is not constructed")
		}
		var oid asn1.ObjectIdentifier
		inner, err := asn1.Unmarshal(gn.Bytes, &oid)
		if err != nil {
			return fmt.Errorf("otherName type-id: %w", err)
		}
		var explicit asn1.RawValue
		if rest, err := asn1.Unmarshal(inner, &explicit); err != nil {
			return fmt.Errorf("otherName %v value: %w", oid, err)
		} else if len(rest) != 0 {
			return fmt.Errorf("otherName %v: trailing data", oid)
		}
		if explicit.Class != asn1.ClassContextSpecific || explicit.Tag != 0 || !explicit.IsCompound {
			return fmt.Errorf("otherName %v value is not [0] EXPLICIT", oid)
		}
		switch {
		case oid.Equal(oidXmppAddr):
			if s, ok, err := universalString(explicit.Bytes, asn1.TagUTF8String); err != nil {
				return fmt.Errorf("id-on-xmppAddr: %w", err)
			} else if ok && utf8.ValidString(s) {
				n.XmppAddr = append(n.XmppAddr, s)
			}
		case oid.Equal(oidSRVName):
			if s, ok, err := universalString(explicit.Bytes, asn1.TagIA5String); err != nil {
				return fmt.Errorf("id-on-dnsSRV: %w", err)
			} else if ok && isASCII(s) {
				n.SRV = append(n.SRV, s)
			}
		}
	}
	return nil
}

// universalString decodes der, one value, and returns its content when it
// is a primitive universal value of the given tag; ok is false for a value
// of another type.
func universalString(der []byte, tag int) (s string, ok bool, err error) {
	var v asn1.RawValue
	rest, err := asn1.Unmarshal(der, &v)
	switch {
	case err != nil:
		return "", false, err
	case len(rest) != 0:
		return "", false, errors.New("trailing data")
	case v.Class != asn1.ClassUniversal || v.Tag != tag || v.IsCompound:
		return "", false, nil
	}
	return string(v.Bytes), true, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// match returns the first identity of n that names ref, a domain in
// lower-case A-labels: DNS-IDs first, then SRV-IDs, then XmppAddrs.
func (n CertNames) match(ref string) (CertIdentity, string) {
	for _, d := range n.DNS {
		if matchDNSID(d, ref) {
			return IdentityDNS, d
		}
	}
	for _, s := range n.SRV {
		if len(s) > len(srvServer) && strings.EqualFold(s[:len(srvServer)], srvServer) &&
			dnsName(s[len(srvServer):]) == ref {
			return IdentitySRV, s
		}
	}
	for _, a := range n.XmppAddr {
		// A server's XmppAddr is a JID of a domainpart alone, in
		// U-labels or A-labels; compared as A-labels.
		j, err := jid.Parse(a)
		if err != nil || j.Localpart() != "" || j.Resourcepart() != "" {
			continue
		}
		if d, err := referenceDomain(j.Domainpart()); err == nil && d == ref {
			return IdentityXmppAddr, a
		}
	}
	return IdentityNone, ""
}

// matchDNSID reports whether the presented dNSName names ref (RFC 6125
// §6.4): equal ignoring ASCII case and a final dot; or a wildcard "*" that
// is the whole left-most label, standing for exactly one non-empty label,
// over at least two labels (so "*.a.test" names "x.a.test" but neither
// "a.test" nor "y.x.a.test", and "*.test" names nothing). A wildcard
// within a label ("x*.a.test") names nothing: RFC 6125 allows refusing
// it, and XMPP servers do not need it.
func matchDNSID(presented, ref string) bool {
	p := dnsName(presented)
	if p == "" {
		return false
	}
	if p == ref {
		return true
	}
	rest, ok := strings.CutPrefix(p, "*.")
	if !ok || strings.Contains(rest, "*") || !strings.Contains(rest, ".") {
		return false
	}
	first, tail, ok := strings.Cut(ref, ".")
	return ok && first != "" && tail == rest
}

// dnsName is a presented DNS name in lower case without a final dot.
func dnsName(s string) string {
	return strings.ToLower(strings.TrimSuffix(s, "."))
}

// referenceDomain returns domain as the reference identifier certificates
// are compared with: lower-case A-labels (RFC 5890) without a final dot.
// An IP address is not a DNS domain name, and no certificate names it
// here.
func referenceDomain(domain string) (string, error) {
	d := strings.TrimSuffix(domain, ".")
	if d == "" {
		return "", errors.New("s2s: no domain to verify the certificate for")
	}
	if net.ParseIP(strings.Trim(d, "[]")) != nil {
		return "", fmt.Errorf("s2s: %s is an IP address, not a DNS domain name", domain)
	}
	a, err := idna.Lookup.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("s2s: domain %q: %w", domain, err)
	}
	return strings.ToLower(a), nil
}

// constrained reports whether every CA of chain (the leaf first) allows
// the DNS domain ref by its name constraints (RFC 5280 §4.2.1.10).
func constrained(chain []*x509.Certificate, ref string) bool {
	for _, ca := range chain[1:] {
		if len(ca.PermittedDNSDomains) > 0 && !slices.ContainsFunc(ca.PermittedDNSDomains, func(c string) bool { return withinDomain(ref, c) }) {
			return false
		}
		if slices.ContainsFunc(ca.ExcludedDNSDomains, func(c string) bool { return withinDomain(ref, c) }) {
			return false
		}
	}
	return true
}

// withinDomain reports whether the DNS name constraint c covers domain:
// "a.test" covers a.test and its subdomains, ".a.test" its subdomains only.
func withinDomain(domain, c string) bool {
	c = dnsName(c)
	switch {
	case c == "":
		return true
	case strings.HasPrefix(c, "."):
		return strings.HasSuffix(domain, c)
	default:
		return domain == c || strings.HasSuffix(domain, "."+c)
	}
}

// TLSOptions configure the tls.Config of s2s streams.
type TLSOptions struct {
	// Certificate returns the certificate (with its chain) this server
	// presents, at each handshake, so that a reloaded certificate serves
	// the next stream. It may return nil on an outbound stream: then none
	// is presented, and the peer cannot offer SASL EXTERNAL.
	Certificate func() (*tls.Certificate, error)
	// RequireValid refuses during the handshake a peer certificate that
	// does not verify (s2s.require_valid_certificates): on an outbound
	// stream, its chain or its name for the domain; on an inbound stream,
	// a missing certificate or its chain (the name waits for the stream
	// header's 'from': VerifyPeer). Without it every handshake goes on,
	// and the stream decides between SASL EXTERNAL and dialback with
	// VerifyPeer.
	RequireValid bool
	// DirectTLS offers the ALPN protocol "xmpp-server" (XEP-0368); without
	// it the config is for STARTTLS (RFC 6120 §5).
	DirectTLS bool
}

// OutboundConfig returns the tls.Config of a stream this server initiates
// to domain. Its certificate goes through GetClientCertificate, never
// Certificates: crypto/tls withholds a certificate from Certificates that
// does not chain to one of the CAs the peer's CertificateRequest lists (a
// self-signed one never does), and the peer could then never offer SASL
// EXTERNAL. crypto/tls's own verification is off because an untrusted
// certificate leads to dialback, not to a failed handshake; VerifyConnection
// applies RequireValid, and the stream reads the outcome with VerifyPeer.
func (v *CertVerifier) OutboundConfig(domain string, o TLSOptions) *tls.Config {
	serverName := domain
	if ref, err := referenceDomain(domain); err == nil {
		serverName = ref // SNI carries A-labels (RFC 6066 §3)
	}
	cfg := &tls.Config{
		ServerName:         serverName,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // verified by VerifyConnection and VerifyPeer, see above
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if o.Certificate == nil {
				return &tls.Certificate{}, nil
			}
			c, err := o.Certificate()
			if err != nil {
				return nil, fmt.Errorf("s2s: certificate to present: %w", err)
			}
			if c == nil {
				return &tls.Certificate{}, nil // an empty one: present none
			}
			return c, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if !o.RequireValid {
				return nil
			}
			return v.VerifyPeer(domain, cs).Err
		},
	}
	if o.DirectTLS {
		cfg.NextProtos = []string{ALPNServer}
	}
	return cfg
}

// InboundConfig returns the tls.Config of the streams this server accepts.
// It asks for a client certificate without requiring one (unless
// RequireValid) and without letting crypto/tls verify it: a peer with a
// self-signed certificate, or none, may still authenticate with dialback.
// The stream verifies the certificate for the 'from' of its header with
// VerifyPeer, to decide whether to offer SASL EXTERNAL (XEP-0178 §3).
func (v *CertVerifier) InboundConfig(o TLSOptions) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequestClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if o.Certificate == nil {
				return nil, errors.New("s2s: no certificate to serve")
			}
			c, err := o.Certificate()
			if err != nil {
				return nil, fmt.Errorf("s2s: certificate to serve: %w", err)
			}
			if c == nil {
				return nil, errors.New("s2s: no certificate to serve")
			}
			return c, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if !o.RequireValid {
				return nil
			}
			if chains, _, err := v.verifyChain(cs.PeerCertificates); chains == nil {
				return err
			}
			return nil
		},
	}
	if o.RequireValid {
		cfg.ClientAuth = tls.RequireAnyClientCert
	}
	if o.DirectTLS {
		cfg.NextProtos = []string{ALPNServer}
	}
	return cfg
}
