package modules

import (
	"crypto/sha1"
	"encoding/base64"
	"slices"
	"strings"

	"mellium.im/xmpp/disco/info"
)

// XEP-0115 Entity Capabilities (version 1.6): the hash of a disco#info
// answer, which the server advertises for itself in its stream features
// (§6.3) and which PEP checks in its clients' presence.

// CapsNode is the node of the server's capabilities.
const CapsNode = "https://github.com/adhocd/adhocd"

// CapsHash is the XEP-0115 §5.1 verification string of a disco#info
// answer, hashed with SHA-1 and in Base64: identities as
// "category/type/lang/name", features, and each extended form as its
// §5.4 string (FORM_TYPE<var<value<…).
func CapsHash(identities, features, forms []string) string {
	ids, feats, fs := slices.Clone(identities), slices.Clone(features), slices.Clone(forms)
	slices.Sort(ids)
	slices.Sort(feats)
	slices.Sort(fs)
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(id + "<")
	}
	for _, f := range feats {
		b.WriteString(f + "<")
	}
	for _, f := range fs {
		b.WriteString(f)
	}
	sum := sha1.Sum([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// identityString is an identity as CapsHash reads it.
func identityString(id info.Identity) string {
	return id.Category + "/" + id.Type + "/" + id.Lang + "/" + id.Name
}

// Caps returns the node and hash of the server JID's disco#info, as its
// stream features advertise them; disco#info of node#ver answers what the
// root node does.
func (d *Disco) Caps() (node, ver string) {
	d.mu.RLock()
	ids := make([]string, len(d.identities))
	for i, id := range d.identities {
		ids[i] = identityString(id)
	}
	feats := slices.Clone(d.features)
	d.mu.RUnlock()
	return CapsNode, CapsHash(ids, feats, nil)
}
