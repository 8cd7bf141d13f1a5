package c2s

import (
	"bytes"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/auth"
)

// attemptedUser returns the account a client's first SASL message names,
// as the localpart package auth would look up: PLAIN's authcid (RFC 4616),
// SCRAM's username (RFC 5802 §5.1, its "=2C" and "=3D" unescaped). It is
// read here, before the exchange runs, so that the back-off per (address,
// account) can refuse an account that has used up its failures before its
// password is checked; auth.Exchange names the account only once the
// exchange succeeded. It returns "" when the message names no valid
// account: such an attempt counts against the address only.
func (c *Conn) attemptedUser(mech string, first []byte) string {
	var name string
	switch {
	case mech == auth.Plain:
		parts := bytes.Split(first, []byte{0})
		if len(parts) != 3 {
			return ""
		}
		name = string(parts[1])
	case strings.HasPrefix(mech, "SCRAM-"):
		// gs2-header: cbind-flag "," [authzid] ","; then, after an optional
		// reserved "m=" extension, "n=" username.
		parts := strings.SplitN(string(first), ",", 5)
		if len(parts) < 4 {
			return ""
		}
		for _, p := range parts[2:4] {
			if u, ok := strings.CutPrefix(p, "n="); ok {
				name = strings.NewReplacer("=2C", ",", "=3D", "=").Replace(u)
				break
			}
		}
	}
	if name == "" {
		return ""
	}
	j, err := jid.New(name, c.env.Domain.Domainpart(), "")
	if err != nil {
		return ""
	}
	return j.Localpart()
}
