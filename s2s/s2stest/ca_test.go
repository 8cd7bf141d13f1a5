package s2stest_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/s2s/s2stest"
)

func newCA(t *testing.T) *s2stest.CA {
	t.Helper()
	ca, err := s2stest.NewCA("s2stest CA")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t *testing.T, ca *s2stest.CA, o s2stest.Options) *s2stest.Cert {
	t.Helper()
	c, err := ca.Issue(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// openssl returns the path of the openssl program, which reads the
// certificates independently of Go, or skips the test.
func openssl(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	return p
}

func TestIssue(t *testing.T) {
	ca := newCA(t)
	c := issue(t, ca, s2stest.Options{
		CommonName: "a.test",
		DNS:        []string{"a.test", "*.a.test"},
		XmppAddr:   []string{"a.test"},
		SRV:        []string{"_xmpp-server.a.test"},
	})
	if !slices.Equal(c.Leaf.DNSNames, []string{"a.test", "*.a.test"}) {
		t.Errorf("DNSNames = %q", c.Leaf.DNSNames)
	}
	if !slices.Equal(c.Leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Errorf("ExtKeyUsage = %v", c.Leaf.ExtKeyUsage)
	}
	if c.Leaf.Subject.CommonName != "a.test" {
		t.Errorf("CN = %q", c.Leaf.Subject.CommonName)
	}
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "x.a.test", KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			t.Errorf("usage %v: %v", u, err)
		}
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: x509.NewCertPool()}); err == nil {
		t.Error("verifies without the CA")
	}

	// OpenSSL reads the otherNames as XmppAddr and SRVName.
	bin := openssl(t)
	dir := t.TempDir()
	if err := c.WriteFiles(filepath.Join(dir, "a.pem"), filepath.Join(dir, "a.key")); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "x509", "-in", filepath.Join(dir, "a.pem"), "-noout", "-ext", "subjectAltName").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509: %v\n%s", err, out)
	}
	for _, want := range []string{"DNS:a.test", "DNS:*.a.test", "othername: XmppAddr::a.test", "othername: SRVName::_xmpp-server.a.test"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("openssl shows no %q in\n%s", want, out)
		}
	}
}

func TestOtherNamesAndEmptySubject(t *testing.T) {
	ca := newCA(t)
	c := issue(t, ca, s2stest.Options{
		XmppAddr:   []string{"a.test"},
		OtherNames: []s2stest.OtherName{{OID: s2stest.OIDUPN, Value: "a.test"}},
	})
	if c.Leaf.Subject.CommonName != "" || len(c.Leaf.DNSNames) != 0 {
		t.Errorf("subject %q, DNSNames %q; want none", c.Leaf.Subject, c.Leaf.DNSNames)
	}
	// RFC 5280 §4.2.1.6: with an empty subject the subjectAltName is
	// critical; crypto/x509 reads no name in it and reports it unhandled.
	var critical bool
	for _, e := range c.Leaf.Extensions {
		if e.Id.String() == "2.5.29.17" {
			critical = e.Critical
		}
	}
	if !critical {
		t.Error("subjectAltName is not critical with an empty subject")
	}
	if len(c.Leaf.UnhandledCriticalExtensions) != 1 {
		t.Errorf("UnhandledCriticalExtensions = %v", c.Leaf.UnhandledCriticalExtensions)
	}
	bin := openssl(t)
	file := filepath.Join(t.TempDir(), "a.pem")
	if err := c.WriteFiles(file, ""); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "x509", "-in", file, "-noout", "-ext", "subjectAltName").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509: %v\n%s", err, out)
	}
	for _, want := range []string{"critical", "othername: XmppAddr::a.test", "othername: UPN::a.test"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("openssl shows no %q in\n%s", want, out)
		}
	}
}

func TestOptions(t *testing.T) {
	ca := newCA(t)
	past := time.Now().Add(-48 * time.Hour)
	expired := issue(t, ca, s2stest.Options{DNS: []string{"a.test"}, NotBefore: past, NotAfter: past.Add(time.Hour)})
	if !expired.Leaf.NotAfter.Equal(past.Add(time.Hour).Truncate(time.Second)) {
		t.Errorf("NotAfter = %v, want %v", expired.Leaf.NotAfter, past.Add(time.Hour))
	}
	var invalid x509.CertificateInvalidError
	if _, err := expired.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool()}); !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Errorf("expired certificate: %v", err)
	}
	serverOnly := issue(t, ca, s2stest.Options{DNS: []string{"a.test"}, EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if !slices.Equal(serverOnly.Leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("ExtKeyUsage = %v", serverOnly.Leaf.ExtKeyUsage)
	}
	if _, err := serverOnly.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("a serverAuth-only certificate verifies for clientAuth")
	}
	anyUsage := issue(t, ca, s2stest.Options{DNS: []string{"a.test"}, EKU: []x509.ExtKeyUsage{}})
	if len(anyUsage.Leaf.ExtKeyUsage) != 0 {
		t.Errorf("ExtKeyUsage = %v, want none", anyUsage.Leaf.ExtKeyUsage)
	}
}

func TestIntermediate(t *testing.T) {
	root := newCA(t)
	inter, err := root.NewIntermediate("s2stest intermediate", "a.test")
	if err != nil {
		t.Fatal(err)
	}
	c := issue(t, inter, s2stest.Options{DNS: []string{"x.a.test"}})
	chain := c.Chain()
	if len(chain) != 2 || !chain[0].Equal(c.Leaf) || !chain[1].Equal(inter.Cert) {
		t.Fatalf("chain of %d certificates, want the leaf and the intermediate", len(chain))
	}
	if len(c.TLS().Certificate) != 2 {
		t.Errorf("tls.Certificate holds %d certificates, want 2", len(c.TLS().Certificate))
	}
	inters := x509.NewCertPool()
	inters.AddCert(chain[1])
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: root.Pool(), Intermediates: inters}); err != nil {
		t.Errorf("leaf of the intermediate: %v", err)
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: root.Pool()}); err == nil {
		t.Error("verifies without the intermediate")
	}
	// The name constraint holds.
	outside := issue(t, inter, s2stest.Options{DNS: []string{"b.test"}})
	if _, err := outside.Leaf.Verify(x509.VerifyOptions{Roots: root.Pool(), Intermediates: inters}); err == nil {
		t.Error("a name outside the intermediate's constraint verifies")
	}

	// OpenSSL accepts the chain files for TLS clients and servers, the
	// check Prosody's and ejabberd's OpenSSL make of a peer.
	bin := openssl(t)
	dir := t.TempDir()
	caFile, chainFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "chain.pem"), filepath.Join(dir, "key.pem")
	if err := root.WritePEM(caFile); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteFiles(chainFile, keyFile); err != nil {
		t.Fatal(err)
	}
	for _, purpose := range []string{"sslclient", "sslserver"} {
		out, err := exec.Command(bin, "verify", "-CAfile", caFile, "-untrusted", chainFile, "-purpose", purpose, chainFile).CombinedOutput()
		if err != nil {
			t.Errorf("openssl verify -purpose %s: %v\n%s", purpose, err, out)
		}
	}
}

func TestSelfSigned(t *testing.T) {
	c, err := s2stest.SelfSigned(s2stest.Options{CommonName: "a.test", DNS: []string{"a.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Leaf.CheckSignature(c.Leaf.SignatureAlgorithm, c.Leaf.RawTBSCertificate, c.Leaf.Signature); err != nil {
		t.Errorf("not signed by its own key: %v", err)
	}
	if string(c.Leaf.RawIssuer) != string(c.Leaf.RawSubject) {
		t.Errorf("issuer %q is not the subject %q", c.Leaf.Issuer, c.Leaf.Subject)
	}
	if c.Leaf.IsCA {
		t.Error("a self-signed leaf is a CA")
	}
	var unknown x509.UnknownAuthorityError
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: newCA(t).Pool()}); !errors.As(err, &unknown) {
		t.Errorf("Verify = %v, want an unknown authority", err)
	}
	if len(c.Chain()) != 1 {
		t.Errorf("chain of %d certificates, want 1", len(c.Chain()))
	}
}

func TestWriteFiles(t *testing.T) {
	ca := newCA(t)
	c := issue(t, ca, s2stest.Options{DNS: []string{"a.test"}})
	dir := t.TempDir()
	certFile, keyFile, both := filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key"), filepath.Join(dir, "a.pem")
	if err := c.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !pair.Leaf.Equal(c.Leaf) {
		t.Error("the files hold another certificate")
	}
	if fi, err := os.Stat(keyFile); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	// One file, chain and key, as ejabberd's certfiles take.
	if err := c.WriteFiles(both, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(both, both); err != nil {
		t.Errorf("combined file: %v", err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := ca.WritePEM(caFile); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatal("the CA file holds no certificate")
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "a.test"}); err != nil {
		t.Errorf("leaf against the written CA file: %v", err)
	}
	if err := c.WriteFiles("", ""); err == nil {
		t.Error("WriteFiles without a file name succeeded")
	}
}
