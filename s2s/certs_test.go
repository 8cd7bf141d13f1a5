package s2s_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/adhocd/adhocd/s2s"
	"github.com/adhocd/adhocd/s2s/s2stest"
)

func newCA(t *testing.T, name string) *s2stest.CA {
	t.Helper()
	ca, err := s2stest.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustIssue(t *testing.T, ca *s2stest.CA, o s2stest.Options) *s2stest.Cert {
	t.Helper()
	c, err := ca.Issue(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustSelfSigned(t *testing.T, o s2stest.Options) *s2stest.Cert {
	t.Helper()
	c, err := s2stest.SelfSigned(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestVerifyIdentity checks the RFC 6125 identity rules on certificates of
// a trusted CA: which identifiers name the domain and which do not.
func TestVerifyIdentity(t *testing.T) {
	ca := newCA(t, "test CA")
	v := &s2s.CertVerifier{Roots: ca.Pool()}
	upn := []s2stest.OtherName{{OID: s2stest.OIDUPN, Value: "a.test"}}
	for _, c := range []struct {
		name     string
		domain   string
		cert     s2stest.Options
		status   s2s.CertStatus
		identity s2s.CertIdentity
		matched  string
	}{
		{"DNS-ID", "a.test", s2stest.Options{DNS: []string{"a.test"}}, s2s.CertValid, s2s.IdentityDNS, "a.test"},
		{"DNS-ID among others", "a.test", s2stest.Options{DNS: []string{"b.test", "a.test"}}, s2s.CertValid, s2s.IdentityDNS, "a.test"},
		{"DNS-ID case and final dot", "a.test.", s2stest.Options{DNS: []string{"A.Test."}}, s2s.CertValid, s2s.IdentityDNS, "A.Test."},
		{"wrong DNS-ID", "a.test", s2stest.Options{DNS: []string{"b.test"}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},
		{"DNS-ID of a subdomain", "a.test", s2stest.Options{DNS: []string{"x.a.test"}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},
		{"DNS-ID of the parent", "x.a.test", s2stest.Options{DNS: []string{"a.test"}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},

		{"wildcard", "x.a.test", s2stest.Options{DNS: []string{"*.a.test"}}, s2s.CertValid, s2s.IdentityDNS, "*.a.test"},
		{"wildcard, upper case", "X.A.TEST", s2stest.Options{DNS: []string{"*.a.test"}}, s2s.CertValid, s2s.IdentityDNS, "*.a.test"},
		{"wildcard is not the base domain", "a.test", s2stest.Options{DNS: []string{"*.a.test"}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},
		{"wildcard is one label", "y.x.a.test", s2stest.Options{DNS: []string{"*.a.test"}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},
		{"wildcard within a label", "xy.a.test", s2stest.Options{DNS: []string{"x*.a.test"}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},
		{"wildcard suffix in a label", "xy.a.test", s2stest.Options{DNS: []string{"*y.a.test"}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},
		{"wildcard not left-most", "x.y.a.test", s2stest.Options{DNS: []string{"x.*.a.test"}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},
		{"wildcard over a top-level domain", "a.test", s2stest.Options{DNS: []string{"*.test"}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},
		{"bare wildcard", "a.test", s2stest.Options{DNS: []string{"*"}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},

		{"SRV-ID", "a.test", s2stest.Options{SRV: []string{"_xmpp-server.a.test"}}, s2s.CertValid, s2s.IdentitySRV, "_xmpp-server.a.test"},
		{"SRV-ID, mixed case", "a.test", s2stest.Options{SRV: []string{"_XMPP-Server.A.test"}}, s2s.CertValid, s2s.IdentitySRV, "_XMPP-Server.A.test"},
		{"SRV-ID of the client service", "a.test", s2stest.Options{SRV: []string{"_xmpp-client.a.test"}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},
		{"SRV-ID of another domain", "a.test", s2stest.Options{SRV: []string{"_xmpp-server.b.test"}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},
		{"SRV-ID without the service", "a.test", s2stest.Options{SRV: []string{"a.test"}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},
		{"SRV-ID with a wildcard", "x.a.test", s2stest.Options{SRV: []string{"_xmpp-server.*.a.test"}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},

		{"XmppAddr", "a.test", s2stest.Options{XmppAddr: []string{"a.test"}}, s2s.CertValid, s2s.IdentityXmppAddr, "a.test"},
		{"XmppAddr, upper case", "a.test", s2stest.Options{XmppAddr: []string{"A.TEST"}}, s2s.CertValid, s2s.IdentityXmppAddr, "A.TEST"},
		{"XmppAddr of a user", "a.test", s2stest.Options{XmppAddr: []string{"admin@a.test"}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},
		{"XmppAddr with a resource", "a.test", s2stest.Options{XmppAddr: []string{"a.test/res"}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},
		{"XmppAddr as an IA5String", "a.test", s2stest.Options{OtherNames: []s2stest.OtherName{{OID: s2stest.OIDXmppAddr, Tag: asn1.TagIA5String, Value: "a.test"}}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},
		{"XmppAddr with a wildcard", "x.a.test", s2stest.Options{XmppAddr: []string{"*.a.test"}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},
		{"UPN with the domain's text", "a.test", s2stest.Options{OtherNames: upn}, s2s.CertNameMismatch, s2s.IdentityNone, ""},
		{"UPN and an XmppAddr", "a.test", s2stest.Options{OtherNames: upn, XmppAddr: []string{"a.test"}}, s2s.CertValid, s2s.IdentityXmppAddr, "a.test"},

		{"CN only", "a.test", s2stest.Options{CommonName: "a.test"}, s2s.CertNameMismatch, s2s.IdentityNone, ""},
		{"CN beside another SAN", "a.test", s2stest.Options{CommonName: "a.test", DNS: []string{"b.test"}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},
		{"empty subject, critical SAN with a DNS-ID", "a.test", s2stest.Options{DNS: []string{"a.test"}}, s2s.CertValid, s2s.IdentityDNS, "a.test"},
		{"empty subject, critical SAN with an XmppAddr alone", "a.test", s2stest.Options{XmppAddr: []string{"a.test"}}, s2s.CertValid, s2s.IdentityXmppAddr, "a.test"},
		{"empty subject, critical SAN with a UPN alone", "a.test", s2stest.Options{OtherNames: upn}, s2s.CertNameMismatch, s2s.IdentityNone, ""},

		{"IDN DNS-ID", "bücher.test", s2stest.Options{DNS: []string{"xn--bcher-kva.test"}}, s2s.CertValid, s2s.IdentityDNS, "xn--bcher-kva.test"},
		{"IDN wildcard", "xmpp.bücher.test", s2stest.Options{DNS: []string{"*.xn--bcher-kva.test"}}, s2s.CertValid, s2s.IdentityDNS, "*.xn--bcher-kva.test"},
		{"IDN SRV-ID", "bücher.test", s2stest.Options{SRV: []string{"_xmpp-server.xn--bcher-kva.test"}}, s2s.CertValid, s2s.IdentitySRV, "_xmpp-server.xn--bcher-kva.test"},
		{"IDN XmppAddr in U-labels", "xn--bcher-kva.test", s2stest.Options{XmppAddr: []string{"bücher.test"}}, s2s.CertValid, s2s.IdentityXmppAddr, "bücher.test"},
		{"IDN XmppAddr, Unicode domain", "bücher.test", s2stest.Options{XmppAddr: []string{"BÜCHER.test"}}, s2s.CertValid, s2s.IdentityXmppAddr, "BÜCHER.test"},
		{"IDN domain, ASCII look-alike", "bücher.test", s2stest.Options{DNS: []string{"bucher.test"}, XmppAddr: []string{"bucher.test"}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},

		{"IP address domain", "127.0.0.1", s2stest.Options{DNS: []string{"127.0.0.1"}, XmppAddr: []string{"127.0.0.1"}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},
		{"empty domain", "", s2stest.Options{DNS: []string{"a.test"}}, s2s.CertNameMismatch, s2s.IdentityNone, ""},
		{"no names", "a.test", s2stest.Options{}, s2s.CertNameMismatch, s2s.IdentityNone, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cert := mustIssue(t, ca, c.cert)
			r := v.Verify(c.domain, cert.Chain())
			if r.Status != c.status || r.Identity != c.identity || r.Name != c.matched {
				t.Fatalf("Verify(%q) = %s, %s %q (%v); want %s, %s %q", c.domain, r.Status, r.Identity, r.Name, r.Err, c.status, c.identity, c.matched)
			}
			if r.Valid() != (c.status == s2s.CertValid) || (r.Err == nil) != r.Valid() {
				t.Errorf("Valid() = %v, Err = %v for status %s", r.Valid(), r.Err, r.Status)
			}
			if r.Domain != c.domain {
				t.Errorf("Domain = %q, want %q", r.Domain, c.domain)
			}
			// The chain is trusted whatever the names: the chains are
			// there for the operator command and the logs.
			if len(r.Chains) == 0 {
				t.Error("no verified chain")
			}
		})
	}
}

// TestVerifyChain checks what makes a chain untrusted, whatever it names,
// and which usages a trusted chain may have.
func TestVerifyChain(t *testing.T) {
	ca := newCA(t, "test CA")
	other := newCA(t, "other CA")
	inter, err := ca.NewIntermediate("test intermediate")
	if err != nil {
		t.Fatal(err)
	}
	v := &s2s.CertVerifier{Roots: ca.Pool()}
	names := s2stest.Options{DNS: []string{"a.test"}, XmppAddr: []string{"a.test"}, SRV: []string{"_xmpp-server.a.test"}}
	with := func(f func(*s2stest.Options)) s2stest.Options {
		o := names
		f(&o)
		return o
	}
	past := time.Now().Add(-30 * 24 * time.Hour)
	future := time.Now().Add(30 * 24 * time.Hour)
	leafOfInter := mustIssue(t, inter, names)

	var unknown x509.UnknownAuthorityError
	isUnknown := func(err error) bool { return errors.As(err, &unknown) }
	invalidBecause := func(reason x509.InvalidReason) func(error) bool {
		return func(err error) bool {
			var e x509.CertificateInvalidError
			return errors.As(err, &e) && e.Reason == reason
		}
	}
	for _, c := range []struct {
		name   string
		chain  []*x509.Certificate
		status s2s.CertStatus
		why    func(error) bool // of Err, for the invalid ones
	}{
		{"trusted", mustIssue(t, ca, names).Chain(), s2s.CertValid, nil},
		{"serverAuth only", mustIssue(t, ca, with(func(o *s2stest.Options) { o.EKU = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} })).Chain(), s2s.CertValid, nil},
		{"clientAuth only", mustIssue(t, ca, with(func(o *s2stest.Options) { o.EKU = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} })).Chain(), s2s.CertValid, nil},
		{"no extended key usage", mustIssue(t, ca, with(func(o *s2stest.Options) { o.EKU = []x509.ExtKeyUsage{} })).Chain(), s2s.CertValid, nil},
		{"code signing only", mustIssue(t, ca, with(func(o *s2stest.Options) { o.EKU = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning} })).Chain(), s2s.CertChainInvalid, invalidBecause(x509.IncompatibleUsage)},
		{"expired", mustIssue(t, ca, with(func(o *s2stest.Options) { o.NotBefore, o.NotAfter = past, past.Add(24*time.Hour) })).Chain(), s2s.CertChainInvalid, invalidBecause(x509.Expired)},
		{"not yet valid", mustIssue(t, ca, with(func(o *s2stest.Options) { o.NotBefore, o.NotAfter = future, future.Add(24*time.Hour) })).Chain(), s2s.CertChainInvalid, invalidBecause(x509.Expired)},
		{"self-signed", mustSelfSigned(t, names).Chain(), s2s.CertChainInvalid, isUnknown},
		{"another CA", mustIssue(t, other, names).Chain(), s2s.CertChainInvalid, isUnknown},
		{"self-signed for another name", mustSelfSigned(t, s2stest.Options{DNS: []string{"b.test"}}).Chain(), s2s.CertChainInvalid, isUnknown},
		{"intermediate sent", leafOfInter.Chain(), s2s.CertValid, nil},
		{"intermediate not sent", leafOfInter.Chain()[:1], s2s.CertChainInvalid, isUnknown},
		{"no certificate", nil, s2s.CertMissing, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := v.Verify("a.test", c.chain)
			if r.Status != c.status {
				t.Fatalf("Verify = %s (%v), want %s", r.Status, r.Err, c.status)
			}
			if c.status == s2s.CertValid {
				if r.Err != nil || len(r.Chains) == 0 {
					t.Errorf("valid with Err %v and %d chains", r.Err, len(r.Chains))
				}
				return
			}
			if r.Err == nil || r.Valid() {
				t.Fatalf("Err = %v, Valid() = %v", r.Err, r.Valid())
			}
			if c.why != nil && !c.why(r.Err) {
				t.Errorf("Err = %v, not the expected x509 error", r.Err)
			}
			if r.Chains != nil {
				t.Errorf("untrusted chain with verified chains %v", r.Chains)
			}
		})
	}

	t.Run("Now", func(t *testing.T) {
		cert := mustIssue(t, ca, names)
		later := &s2s.CertVerifier{Roots: ca.Pool(), Now: func() time.Time { return cert.Leaf.NotAfter.Add(time.Minute) }}
		if r := later.Verify("a.test", cert.Chain()); r.Status != s2s.CertChainInvalid || !invalidBecause(x509.Expired)(r.Err) {
			t.Errorf("after NotAfter: %s", r)
		}
	})
	t.Run("system roots", func(t *testing.T) {
		// No system trusts the test CA.
		r := (&s2s.CertVerifier{}).Verify("a.test", mustIssue(t, ca, names).Chain())
		if r.Status != s2s.CertChainInvalid {
			t.Errorf("with the system roots: %s", r)
		}
	})
}

// TestNameConstraints checks that an otherName does not escape the DNS name
// constraints of the CA that issued it, which crypto/x509 applies to
// dNSNames only.
func TestNameConstraints(t *testing.T) {
	root := newCA(t, "test CA")
	inter, err := root.NewIntermediate("only a.test", "a.test")
	if err != nil {
		t.Fatal(err)
	}
	v := &s2s.CertVerifier{Roots: root.Pool()}
	for _, c := range []struct {
		name   string
		domain string
		cert   s2stest.Options
		status s2s.CertStatus
	}{
		{"DNS-ID inside", "x.a.test", s2stest.Options{DNS: []string{"x.a.test"}}, s2s.CertValid},
		{"DNS-ID outside", "b.test", s2stest.Options{DNS: []string{"b.test"}}, s2s.CertChainInvalid},
		{"XmppAddr inside", "a.test", s2stest.Options{XmppAddr: []string{"a.test"}}, s2s.CertValid},
		{"XmppAddr of a subdomain", "x.a.test", s2stest.Options{XmppAddr: []string{"x.a.test"}}, s2s.CertValid},
		{"XmppAddr outside", "b.test", s2stest.Options{XmppAddr: []string{"b.test"}}, s2s.CertNameMismatch},
		{"XmppAddr outside, by suffix", "aa.test", s2stest.Options{XmppAddr: []string{"aa.test"}}, s2s.CertNameMismatch},
		{"SRV-ID outside", "b.test", s2stest.Options{SRV: []string{"_xmpp-server.b.test"}}, s2s.CertNameMismatch},
		{"SRV-ID inside", "x.a.test", s2stest.Options{SRV: []string{"_xmpp-server.x.a.test"}}, s2s.CertValid},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := v.Verify(c.domain, mustIssue(t, inter, c.cert).Chain())
			if r.Status != c.status {
				t.Errorf("Verify(%q) = %s, want %s", c.domain, r, c.status)
			}
		})
	}
}

func TestParseCertNames(t *testing.T) {
	ca := newCA(t, "test CA")
	cert := mustIssue(t, ca, s2stest.Options{
		CommonName: "cn.test",
		DNS:        []string{"a.test", "*.a.test"},
		SRV:        []string{"_xmpp-server.a.test", "_xmpp-client.a.test"},
		XmppAddr:   []string{"a.test", "bücher.test"},
		OtherNames: []s2stest.OtherName{
			{OID: s2stest.OIDUPN, Value: "upn.test"},
			{OID: s2stest.OIDXmppAddr, Tag: asn1.TagIA5String, Value: "ia5.test"},
			{OID: s2stest.OIDSRVName, Tag: asn1.TagUTF8String, Value: "_xmpp-server.utf8.test"},
		},
	})
	got, err := s2s.ParseCertNames(cert.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	want := s2s.CertNames{
		DNS:      []string{"a.test", "*.a.test"},
		SRV:      []string{"_xmpp-server.a.test", "_xmpp-client.a.test"},
		XmppAddr: []string{"a.test", "bücher.test"},
	}
	if !slices.Equal(got.DNS, want.DNS) || !slices.Equal(got.SRV, want.SRV) || !slices.Equal(got.XmppAddr, want.XmppAddr) {
		t.Errorf("ParseCertNames = %+v, want %+v", got, want)
	}
	if s := got.String(); !strings.Contains(s, `XmppAddr "bücher.test"`) || !strings.Contains(s, `DNS-ID "*.a.test"`) || strings.Contains(s, "upn.test") || strings.Contains(s, "cn.test") {
		t.Errorf("String() = %s", s)
	}

	// Malformed subjectAltNames: crypto/x509 skips otherNames without
	// looking inside, so these reach ParseCertNames.
	otherName := func(inner ...[]byte) []byte {
		return der(t, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: cat(inner...)})
	}
	oid := der(t, asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 5})
	utf8 := der(t, asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagUTF8String, Bytes: []byte("a.test")})
	explicit := func(b ...[]byte) []byte {
		return der(t, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: cat(b...)})
	}
	seq := func(b ...[]byte) []byte {
		return der(t, asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: cat(b...)})
	}
	for _, c := range []struct {
		name  string
		value []byte
		ok    bool
	}{
		{"well-formed", seq(otherName(oid, explicit(utf8))), true},
		{"not DER", []byte{0x30, 0x05, 0x01}, false},
		{"trailing data", cat(seq(otherName(oid, explicit(utf8))), []byte{0}), false},
		{"a SET", der(t, asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: otherName(oid, explicit(utf8))}), false},
		{"no type-id", seq(otherName(explicit(utf8))), false},
		{"value not explicit", seq(otherName(oid, utf8)), false},
		{"data after the value", seq(otherName(oid, explicit(utf8), utf8)), false},
		{"two values in the explicit tag", seq(otherName(oid, explicit(utf8, utf8))), false},
		{"primitive otherName", seq(der(t, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, Bytes: cat(oid, explicit(utf8))})), false},
		{"universal GeneralName", seq(utf8), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cert := &x509.Certificate{Extensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: c.value}}}
			names, err := s2s.ParseCertNames(cert)
			if (err == nil) != c.ok {
				t.Fatalf("ParseCertNames = %+v, %v; want ok=%v", names, err, c.ok)
			}
			if c.ok && !slices.Equal(names.XmppAddr, []string{"a.test"}) {
				t.Errorf("XmppAddr = %q", names.XmppAddr)
			}
		})
	}
}

// TestOpenSSLCertificate verifies a certificate that OpenSSL wrote, so
// that the otherName parser is checked against another implementation's
// encoding and not only against s2stest's.
func TestOpenSSLCertificate(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	certFile := filepath.Join(dir, "cert.pem")
	out, err := exec.Command(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", filepath.Join(dir, "key.pem"), "-out", certFile, "-days", "2", "-subj", "/CN=cn.test",
		"-addext", "subjectAltName=otherName:1.3.6.1.5.5.7.8.5;UTF8:xmpp.test,otherName:1.3.6.1.5.5.7.8.7;IA5:_xmpp-server.srv.test,DNS:dns.test,otherName:1.3.6.1.4.1.311.20.2.3;UTF8:upn.test",
		"-addext", "extendedKeyUsage=serverAuth,clientAuth").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	// The self-signed certificate is its own CA: a ca_file holding it.
	v, err := s2s.NewCertVerifier(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pemData, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(pemData, mustRead(t, filepath.Join(dir, "key.pem")))
	if err != nil {
		t.Fatal(err)
	}
	chain := []*x509.Certificate{pair.Leaf}
	for domain, want := range map[string]s2s.CertIdentity{
		"dns.test":  s2s.IdentityDNS,
		"srv.test":  s2s.IdentitySRV,
		"xmpp.test": s2s.IdentityXmppAddr,
		"upn.test":  s2s.IdentityNone,
		"cn.test":   s2s.IdentityNone,
	} {
		r := v.Verify(domain, chain)
		if r.Identity != want || r.Valid() != (want != s2s.IdentityNone) {
			t.Errorf("Verify(%q) = %s, want %s", domain, r, want)
		}
	}
}

func TestNewCertVerifier(t *testing.T) {
	ca := newCA(t, "test CA")
	other := newCA(t, "other CA")
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	// A bundle of two CAs, with a key block between them that is skipped.
	bundle := cat(other.CertPEM(), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), ca.CertPEM())
	if err := os.WriteFile(caFile, bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := s2s.NewCertVerifier(caFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, issuer := range []*s2stest.CA{ca, other} {
		if r := v.Verify("a.test", mustIssue(t, issuer, s2stest.Options{DNS: []string{"a.test"}}).Chain()); !r.Valid() {
			t.Errorf("leaf of %s: %s", issuer.Cert.Subject.CommonName, r)
		}
	}
	if v, err := s2s.NewCertVerifier(""); err != nil || v.Roots != nil {
		t.Errorf("NewCertVerifier(\"\") = %+v, %v; want the system roots", v, err)
	}
	bad := map[string][]byte{
		"empty.pem":   nil,
		"key.pem":     []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
		"garbage.pem": []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
	}
	for name, data := range bad {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := s2s.NewCertVerifier(path); err == nil {
			t.Errorf("ca_file %s accepted", name)
		}
	}
	if _, err := s2s.LoadCAFile(filepath.Join(dir, "missing.pem")); err == nil {
		t.Error("a missing ca_file accepted")
	}
}

// handshake runs a TLS handshake over loopback TCP between a client (the
// initiating server) and a server (the receiving server) and returns what
// each side saw. After the handshake the client reads once, briefly, so
// that an alert the server sends after the client finished (TLS 1.3) is
// seen.
type handshakeResult struct {
	client, server       tls.ConnectionState
	clientErr, serverErr error
}

func handshake(t *testing.T, client, server *tls.Config) handshakeResult {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type side struct {
		cs  tls.ConnectionState
		err error
	}
	done := make(chan side, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			done <- side{err: err}
			return
		}
		defer nc.Close()
		tc := tls.Server(nc, server)
		err = tc.HandshakeContext(ctx)
		if err == nil {
			// Answer the client's read below with one byte.
			_, err = tc.Write([]byte{1})
		}
		done <- side{tc.ConnectionState(), err}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	tc := tls.Client(nc, client)
	var r handshakeResult
	r.clientErr = tc.HandshakeContext(ctx)
	if r.clientErr == nil {
		_ = tc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := tc.Read(make([]byte, 1)); err != nil {
			r.clientErr = err
		}
	}
	r.client = tc.ConnectionState()
	tc.Close()
	s := <-done
	r.server, r.serverErr = s.cs, s.err
	return r
}

func certFunc(c *s2stest.Cert) func() (*tls.Certificate, error) {
	return func() (*tls.Certificate, error) { return c.TLS(), nil }
}

// TestTLSConfigs runs handshakes between OutboundConfig and InboundConfig
// and checks what each side can then tell of the other with VerifyPeer.
func TestTLSConfigs(t *testing.T) {
	ca := newCA(t, "test CA")
	v := &s2s.CertVerifier{Roots: ca.Pool()}
	aCert := mustIssue(t, ca, s2stest.Options{DNS: []string{"a.test"}})
	bCert := mustIssue(t, ca, s2stest.Options{DNS: []string{"b.test"}, XmppAddr: []string{"b.test"}})
	aSelf := mustSelfSigned(t, s2stest.Options{CommonName: "a.test", DNS: []string{"a.test"}})
	bSelf := mustSelfSigned(t, s2stest.Options{CommonName: "b.test", DNS: []string{"b.test"}})

	t.Run("both trusted", func(t *testing.T) {
		// a.test initiates to b.test.
		r := handshake(t,
			v.OutboundConfig("b.test", s2s.TLSOptions{Certificate: certFunc(aCert)}),
			v.InboundConfig(s2s.TLSOptions{Certificate: certFunc(bCert)}))
		if r.clientErr != nil || r.serverErr != nil {
			t.Fatalf("handshake: client %v, server %v", r.clientErr, r.serverErr)
		}
		if got := v.VerifyPeer("b.test", r.client); !got.Valid() || got.Identity != s2s.IdentityDNS {
			t.Errorf("a.test sees b.test's certificate as %s", got)
		}
		// The inbound side checks the 'from' of the stream header.
		if got := v.VerifyPeer("a.test", r.server); !got.Valid() {
			t.Errorf("b.test sees a.test's certificate as %s", got)
		}
		if got := v.VerifyPeer("c.test", r.server); got.Status != s2s.CertNameMismatch {
			t.Errorf("a stream claiming c.test with a.test's certificate: %s", got)
		}
		if r.server.ServerName != "b.test" {
			t.Errorf("SNI %q, want b.test", r.server.ServerName)
		}
		if r.client.NegotiatedProtocol != "" {
			t.Errorf("ALPN %q on a STARTTLS config", r.client.NegotiatedProtocol)
		}
	})

	t.Run("certificate presented whatever CAs the peer names", func(t *testing.T) {
		// An inbound server that names acceptable CAs (as OpenSSL-based
		// peers do) which a self-signed certificate does not chain to.
		in := v.InboundConfig(s2s.TLSOptions{Certificate: certFunc(bCert)})
		in.ClientCAs = newCA(t, "unrelated CA").Pool()
		r := handshake(t, v.OutboundConfig("b.test", s2s.TLSOptions{Certificate: certFunc(aSelf)}), in)
		if r.clientErr != nil || r.serverErr != nil {
			t.Fatalf("handshake: client %v, server %v", r.clientErr, r.serverErr)
		}
		if got := v.VerifyPeer("a.test", r.server); got.Status != s2s.CertChainInvalid {
			t.Errorf("b.test sees a.test's self-signed certificate as %s, want it presented and untrusted", got)
		}
		// The control: crypto/tls's Certificates would have withheld it.
		plain := &tls.Config{Certificates: []tls.Certificate{*aSelf.TLS()}, InsecureSkipVerify: true, ServerName: "b.test"}
		r = handshake(t, plain, in)
		if r.clientErr != nil || r.serverErr != nil {
			t.Fatalf("control handshake: client %v, server %v", r.clientErr, r.serverErr)
		}
		if got := v.VerifyPeer("a.test", r.server); got.Status != s2s.CertMissing {
			t.Errorf("control: %s, want no certificate (withheld by crypto/tls)", got)
		}
	})

	t.Run("untrusted peers without RequireValid", func(t *testing.T) {
		r := handshake(t,
			v.OutboundConfig("b.test", s2s.TLSOptions{Certificate: certFunc(aSelf)}),
			v.InboundConfig(s2s.TLSOptions{Certificate: certFunc(bSelf)}))
		if r.clientErr != nil || r.serverErr != nil {
			t.Fatalf("handshake: client %v, server %v; want it to succeed, for dialback", r.clientErr, r.serverErr)
		}
		if got := v.VerifyPeer("b.test", r.client); got.Status != s2s.CertChainInvalid {
			t.Errorf("a.test sees b.test's self-signed certificate as %s", got)
		}
		if got := v.VerifyPeer("a.test", r.server); got.Status != s2s.CertChainInvalid {
			t.Errorf("b.test sees a.test's self-signed certificate as %s", got)
		}
	})

	t.Run("no client certificate", func(t *testing.T) {
		for name, f := range map[string]func() (*tls.Certificate, error){
			"nil func":   nil,
			"nil result": func() (*tls.Certificate, error) { return nil, nil },
		} {
			r := handshake(t,
				v.OutboundConfig("b.test", s2s.TLSOptions{Certificate: f}),
				v.InboundConfig(s2s.TLSOptions{Certificate: certFunc(bCert)}))
			if r.clientErr != nil || r.serverErr != nil {
				t.Fatalf("%s: handshake: client %v, server %v", name, r.clientErr, r.serverErr)
			}
			if got := v.VerifyPeer("a.test", r.server); got.Status != s2s.CertMissing {
				t.Errorf("%s: %s, want no certificate", name, got)
			}
		}
	})

	t.Run("outbound RequireValid", func(t *testing.T) {
		for _, c := range []struct {
			name string
			peer *s2stest.Cert
			ok   bool
		}{
			{"trusted", bCert, true},
			{"self-signed", bSelf, false},
			{"trusted, another name", aCert, false},
		} {
			r := handshake(t,
				v.OutboundConfig("b.test", s2s.TLSOptions{Certificate: certFunc(aCert), RequireValid: true}),
				v.InboundConfig(s2s.TLSOptions{Certificate: certFunc(c.peer)}))
			if (r.clientErr == nil) != c.ok {
				t.Errorf("%s: client handshake error %v, want ok=%v", c.name, r.clientErr, c.ok)
			}
			if !c.ok && r.serverErr == nil {
				t.Errorf("%s: the server's handshake succeeded", c.name)
			}
		}
	})

	t.Run("inbound RequireValid", func(t *testing.T) {
		for _, c := range []struct {
			name string
			peer *s2stest.Cert
			ok   bool
		}{
			{"trusted", aCert, true},
			// The name is checked later, against the stream's 'from'.
			{"trusted, any name", bCert, true},
			{"self-signed", aSelf, false},
			{"none", nil, false},
		} {
			cert := func() (*tls.Certificate, error) { return nil, nil }
			if c.peer != nil {
				cert = certFunc(c.peer)
			}
			r := handshake(t,
				v.OutboundConfig("b.test", s2s.TLSOptions{Certificate: cert}),
				v.InboundConfig(s2s.TLSOptions{Certificate: certFunc(bCert), RequireValid: true}))
			if (r.serverErr == nil) != c.ok || (r.clientErr == nil) != c.ok {
				t.Errorf("%s: server %v, client %v; want ok=%v", c.name, r.serverErr, r.clientErr, c.ok)
			}
			if c.ok {
				if got := v.VerifyPeer("a.test", r.server); got.Valid() != (c.peer == aCert) {
					t.Errorf("%s: VerifyPeer(a.test) = %s", c.name, got)
				}
			}
		}
	})

	t.Run("direct TLS", func(t *testing.T) {
		r := handshake(t,
			v.OutboundConfig("b.test", s2s.TLSOptions{Certificate: certFunc(aCert), DirectTLS: true}),
			v.InboundConfig(s2s.TLSOptions{Certificate: certFunc(bCert), DirectTLS: true}))
		if r.clientErr != nil || r.serverErr != nil {
			t.Fatalf("handshake: client %v, server %v", r.clientErr, r.serverErr)
		}
		if r.client.NegotiatedProtocol != s2s.ALPNServer || r.server.NegotiatedProtocol != s2s.ALPNServer {
			t.Errorf("ALPN client %q, server %q; want %q", r.client.NegotiatedProtocol, r.server.NegotiatedProtocol, s2s.ALPNServer)
		}
	})

	t.Run("IDN server name", func(t *testing.T) {
		idn := mustIssue(t, ca, s2stest.Options{DNS: []string{"xn--bcher-kva.test"}})
		r := handshake(t,
			v.OutboundConfig("bücher.test", s2s.TLSOptions{Certificate: certFunc(aCert), RequireValid: true}),
			v.InboundConfig(s2s.TLSOptions{Certificate: certFunc(idn)}))
		if r.clientErr != nil || r.serverErr != nil {
			t.Fatalf("handshake: client %v, server %v", r.clientErr, r.serverErr)
		}
		if r.server.ServerName != "xn--bcher-kva.test" {
			t.Errorf("SNI %q, want the A-labels", r.server.ServerName)
		}
	})

	t.Run("certificate read at each handshake", func(t *testing.T) {
		var cur atomic.Pointer[s2stest.Cert]
		cur.Store(bSelf)
		in := v.InboundConfig(s2s.TLSOptions{Certificate: func() (*tls.Certificate, error) { return cur.Load().TLS(), nil }})
		out := v.OutboundConfig("b.test", s2s.TLSOptions{Certificate: certFunc(aCert)})
		if got := v.VerifyPeer("b.test", handshake(t, out, in).client); got.Status != s2s.CertChainInvalid {
			t.Errorf("before the reload: %s", got)
		}
		cur.Store(bCert)
		if got := v.VerifyPeer("b.test", handshake(t, out, in).client); !got.Valid() {
			t.Errorf("after the reload: %s", got)
		}
	})

	t.Run("no server certificate", func(t *testing.T) {
		r := handshake(t,
			v.OutboundConfig("b.test", s2s.TLSOptions{Certificate: certFunc(aCert)}),
			v.InboundConfig(s2s.TLSOptions{}))
		if r.serverErr == nil || !strings.Contains(r.serverErr.Error(), "no certificate") {
			t.Errorf("server handshake error %v, want no certificate to serve", r.serverErr)
		}
	})
}

func TestStrings(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{s2s.CertMissing.String(), "no certificate"},
		{s2s.CertChainInvalid.String(), "chain invalid"},
		{s2s.CertNameMismatch.String(), "name mismatch"},
		{s2s.CertValid.String(), "valid"},
		{s2s.CertStatus(9).String(), "CertStatus(9)"},
		{s2s.IdentityDNS.String(), "DNS-ID"},
		{s2s.IdentitySRV.String(), "SRV-ID"},
		{s2s.IdentityXmppAddr.String(), "XmppAddr"},
		{s2s.CertIdentity(-1).String(), "CertIdentity(-1)"},
	} {
		if c.got != c.want {
			t.Errorf("String() = %q, want %q", c.got, c.want)
		}
	}
	ca := newCA(t, "test CA")
	v := &s2s.CertVerifier{Roots: ca.Pool()}
	cert := mustIssue(t, ca, s2stest.Options{DNS: []string{"*.a.test"}})
	if got := v.Verify("x.a.test", cert.Chain()).String(); got != `valid for x.a.test (DNS-ID *.a.test)` {
		t.Errorf("valid result: %s", got)
	}
	if got := v.Verify("b.test", cert.Chain()).String(); !strings.HasPrefix(got, "name mismatch: ") || !strings.Contains(got, `DNS-ID "*.a.test"`) {
		t.Errorf("mismatch: %s", got)
	}
}

func der(t *testing.T, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
