// Package s2stest provides what tests of server-to-server streams (package
// s2s) need, as net/http/httptest does for HTTP. Its certificate authority
// (CA) issues server certificates with the identities RFC 6120 §13.7.1.2
// and XEP-0178 put in them (DNS-ID, SRV-ID `_xmpp-server.<domain>` and
// XmppAddr, RFC 6125 §6), with the serverAuth and clientAuth extended key
// usages a server needs to both accept and initiate streams; SelfSigned
// makes the certificates of the dialback cases (XEP-0220); the PEM writers
// give servers that read their certificates from files (adhocd's ca_file,
// Prosody, ejabberd) what they read.
//
// Go's crypto/x509 writes no otherName subjectAltNames, so this package
// writes the whole subjectAltName extension itself (RFC 5280 §4.2.1.6):
// dNSName entries, and otherName entries with id-on-xmppAddr
// (1.3.6.1.5.5.7.8.5, a UTF8String, RFC 6120 §13.7.1.4) and id-on-dnsSRV
// (1.3.6.1.5.5.7.8.7, an IA5String, RFC 4985), or any otherName a negative
// test wants, such as a Microsoft UPN with the same text.
//
// Keys are ECDSA P-256: fast to make, and read by Go, OpenSSL and GnuTLS.
package s2stest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"
)

// Object identifiers of the otherName forms the tests use.
var (
	// OIDXmppAddr is id-on-xmppAddr (RFC 6120 §13.7.1.4).
	OIDXmppAddr = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 5}
	// OIDSRVName is id-on-dnsSRV (RFC 4985).
	OIDSRVName = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 7}
	// OIDUPN is Microsoft's user principal name, an otherName that must
	// never be read as an XMPP identity.
	OIDUPN = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}
)

// oidSubjectAltName is the subjectAltName extension (RFC 5280 §4.2.1.6).
var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// OtherName is one otherName subjectAltName: an object identifier and a
// string value of the given universal ASN.1 type.
type OtherName struct {
	OID asn1.ObjectIdentifier
	// Tag is the universal tag of the value: asn1.TagUTF8String when 0.
	Tag   int
	Value string
}

// Options say what a certificate holds. The zero value is a certificate
// with no names at all, valid from an hour ago for a day, for serverAuth
// and clientAuth.
type Options struct {
	// CommonName is the subject's CN. It is not an identity for s2s when
	// the certificate has subjectAltNames, and not at all for adhocd.
	CommonName string
	// DNS are dNSName entries (DNS-IDs), such as "a.test" or
	// "*.a.test".
	DNS []string
	// XmppAddr are id-on-xmppAddr otherNames, UTF8Strings such as
	// "a.test".
	XmppAddr []string
	// SRV are id-on-dnsSRV otherNames, IA5Strings such as
	// "_xmpp-server.a.test".
	SRV []string
	// OtherNames are further otherNames, written after the others.
	OtherNames []OtherName
	// EKU are the extended key usages: serverAuth and clientAuth when
	// nil, none at all (any usage) when empty but not nil.
	EKU []x509.ExtKeyUsage
	// NotBefore and NotAfter bound the validity: an hour ago and a day
	// from now when zero.
	NotBefore, NotAfter time.Time
}

// CA is a certificate authority of a test: a root, or an intermediate
// issued by another CA.
type CA struct {
	// Cert is the CA's certificate.
	Cert *x509.Certificate
	// Key signs what the CA issues.
	Key crypto.Signer
	// chain is what a leaf the CA issues presents after itself: nothing
	// for a root; for an intermediate, its own certificate and those of
	// the intermediates above it.
	chain []*x509.Certificate
}

// NewCA returns a new self-signed root CA whose subject is name, valid
// from an hour ago for ten years.
func NewCA(name string) (*CA, error) {
	return newCA(name, nil, nil)
}

// NewIntermediate returns a CA issued by ca. When permitted is not empty,
// the intermediate may only issue names within those DNS domains (RFC 5280
// §4.2.1.10 name constraints, marked critical).
func (ca *CA) NewIntermediate(name string, permitted ...string) (*CA, error) {
	return newCA(name, ca, permitted)
}

// newKey makes the P-256 key and the serial number of a new certificate.
func newKey() (*ecdsa.PrivateKey, *big.Int, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("s2stest: generate key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	return key, serial, nil
}

func newCA(name string, parent *CA, permitted []string) (*CA, error) {
	key, serial, err := newKey()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"adhocd s2stest"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if len(permitted) > 0 {
		tmpl.PermittedDNSDomains = permitted
		tmpl.PermittedDNSDomainsCritical = true
	}
	issuer, signer := tmpl, crypto.Signer(key)
	if parent != nil {
		issuer, signer = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("s2stest: create CA certificate %q: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("s2stest: parse CA certificate %q: %w", name, err)
	}
	ca := &CA{Cert: cert, Key: key}
	if parent != nil {
		ca.chain = append([]*x509.Certificate{cert}, parent.chain...)
	}
	return ca, nil
}

// Pool returns a pool holding the CA's certificate alone, to trust it.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// CertPEM returns the CA's certificate in PEM.
func (ca *CA) CertPEM() []byte {
	return pemCert(ca.Cert.Raw)
}

// WritePEM writes the CA's certificate in PEM to path (a server's ca_file,
// Prosody's cafile, ejabberd's s2s_cafile), readable by all.
func (ca *CA) WritePEM(path string) error {
	if err := os.WriteFile(path, ca.CertPEM(), 0o644); err != nil {
		return fmt.Errorf("s2stest: write CA certificate: %w", err)
	}
	return nil
}

// Issue returns a leaf certificate signed by ca with what o says.
func (ca *CA) Issue(o Options) (*Cert, error) {
	return issue(o, ca)
}

// SelfSigned returns a leaf certificate with what o says, signed by its
// own key: what a server without a CA-issued certificate presents, as
// adhocd's generated certificate (package tlscert).
func SelfSigned(o Options) (*Cert, error) {
	return issue(o, nil)
}

// Cert is a leaf certificate with its key and the chain it presents.
type Cert struct {
	// Leaf is the certificate itself.
	Leaf *x509.Certificate
	// Key is its private key.
	Key crypto.Signer
	// chain is what a server presents: the leaf first, then the
	// intermediates, without the root.
	chain []*x509.Certificate
}

func issue(o Options, ca *CA) (*Cert, error) {
	key, serial, err := newKey()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: o.CommonName},
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           o.EKU,
		BasicConstraintsValid: true,
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = now.Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = now.Add(24 * time.Hour)
	}
	if o.EKU == nil {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	san, err := subjectAltName(o)
	if err != nil {
		return nil, err
	}
	if san != nil {
		// RFC 5280 §4.2.1.6: critical when the subject is empty.
		tmpl.ExtraExtensions = []pkix.Extension{{Id: oidSubjectAltName, Critical: o.CommonName == "", Value: san}}
	}
	issuer, signer := tmpl, crypto.Signer(key)
	var chain []*x509.Certificate
	if ca != nil {
		issuer, signer, chain = ca.Cert, ca.Key, ca.chain
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("s2stest: create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("s2stest: parse certificate: %w", err)
	}
	return &Cert{Leaf: leaf, Key: key, chain: append([]*x509.Certificate{leaf}, chain...)}, nil
}

// subjectAltName encodes o's names as the value of a subjectAltName
// extension, GeneralNames (RFC 5280 §4.2.1.6), or returns nil when o has
// none. An otherName is [0] IMPLICIT SEQUENCE { type-id OID, value [0]
// EXPLICIT ANY }; a dNSName is [2] IMPLICIT IA5String.
func subjectAltName(o Options) ([]byte, error) {
	var names []asn1.RawValue
	for _, d := range o.DNS {
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte(d)})
	}
	others := make([]OtherName, 0, len(o.XmppAddr)+len(o.SRV)+len(o.OtherNames))
	for _, a := range o.XmppAddr {
		others = append(others, OtherName{OID: OIDXmppAddr, Tag: asn1.TagUTF8String, Value: a})
	}
	for _, s := range o.SRV {
		others = append(others, OtherName{OID: OIDSRVName, Tag: asn1.TagIA5String, Value: s})
	}
	others = append(others, o.OtherNames...)
	for _, on := range others {
		n, err := otherName(on)
		if err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		return nil, nil
	}
	der, err := asn1.Marshal(names)
	if err != nil {
		return nil, fmt.Errorf("s2stest: encode subjectAltName: %w", err)
	}
	return der, nil
}

func otherName(on OtherName) (asn1.RawValue, error) {
	tag := on.Tag
	if tag == 0 {
		tag = asn1.TagUTF8String
	}
	typeID, err := asn1.Marshal(on.OID)
	if err != nil {
		return asn1.RawValue{}, fmt.Errorf("s2stest: encode otherName %v: %w", on.OID, err)
	}
	value, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: tag, Bytes: []byte(on.Value)})
	if err != nil {
		return asn1.RawValue{}, fmt.Errorf("s2stest: encode otherName %v: %w", on.OID, err)
	}
	explicit, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: value})
	if err != nil {
		return asn1.RawValue{}, fmt.Errorf("s2stest: encode otherName %v: %w", on.OID, err)
	}
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(typeID, explicit...)}, nil
}

// TLS returns the certificate for a tls.Config (Certificates,
// GetCertificate, GetClientCertificate), with its chain and parsed leaf.
func (c *Cert) TLS() *tls.Certificate {
	der := make([][]byte, len(c.chain))
	for i, cert := range c.chain {
		der[i] = cert.Raw
	}
	return &tls.Certificate{Certificate: der, PrivateKey: c.Key, Leaf: c.Leaf}
}

// Chain returns the chain a peer receives: the leaf first, then the
// intermediates, as in tls.ConnectionState.PeerCertificates.
func (c *Cert) Chain() []*x509.Certificate {
	return append([]*x509.Certificate(nil), c.chain...)
}

// CertPEM returns the chain in PEM, the leaf first.
func (c *Cert) CertPEM() []byte {
	var out []byte
	for _, cert := range c.chain {
		out = append(out, pemCert(cert.Raw)...)
	}
	return out
}

// KeyPEM returns the private key in PEM (PKCS #8, "PRIVATE KEY").
func (c *Cert) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		return nil, fmt.Errorf("s2stest: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// WriteFiles writes the chain in PEM to certFile and the key to keyFile,
// readable by its owner only. With keyFile empty the key follows the chain
// in certFile, the single file ejabberd's certfiles take.
func (c *Cert) WriteFiles(certFile, keyFile string) error {
	if certFile == "" {
		return errors.New("s2stest: write certificate: no file name")
	}
	key, err := c.KeyPEM()
	if err != nil {
		return err
	}
	if keyFile == "" {
		if err := os.WriteFile(certFile, append(c.CertPEM(), key...), 0o600); err != nil {
			return fmt.Errorf("s2stest: write certificate: %w", err)
		}
		return nil
	}
	if err := os.WriteFile(certFile, c.CertPEM(), 0o644); err != nil {
		return fmt.Errorf("s2stest: write certificate: %w", err)
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		return fmt.Errorf("s2stest: write key: %w", err)
	}
	return nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("s2stest: serial number: %w", err)
	}
	return n, nil
}
