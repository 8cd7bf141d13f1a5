package upload

import (
	"context"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/wire"
)

// request is a slot request as read and checked.
type request struct {
	name, typ string
	size      int64
}

// parseRequest reads <request filename size content-type/> (XEP-0363 §4),
// or returns the bad-request to answer.
func parseRequest(q *wire.Element) (request, error) {
	r := request{name: q.Attr("filename")}
	if why := badName(r.name); why != "" {
		return r, modules.StanzaError(stanza.Modify, stanza.BadRequest, "the file name "+why)
	}
	size, err := strconv.ParseInt(strings.TrimSpace(q.Attr("size")), 10, 64)
	if err != nil || size < 0 {
		return r, modules.StanzaError(stanza.Modify, stanza.BadRequest, "the size must be the file's length in bytes")
	}
	r.size = size
	if ct := strings.TrimSpace(q.Attr("content-type")); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || !strings.Contains(mt, "/") || len(ct) > maxNameBytes {
			return r, modules.StanzaError(stanza.Modify, stanza.BadRequest, "the content type is not a media type")
		}
		r.typ = mime.FormatMediaType(mt, params)
	}
	return r, nil
}

// badName says what is wrong with a file name, or "".
func badName(name string) string {
	switch {
	case name == "":
		return "is missing"
	case len(name) > maxNameBytes:
		return fmt.Sprintf("is longer than %d bytes", maxNameBytes)
	case !utf8.ValidString(name):
		return "is not UTF-8"
	case name == "." || name == "..":
		return "is not a file's"
	case strings.ContainsAny(name, `/\`):
		return "holds a slash"
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "holds a control character"
	}
	return ""
}

// slot answers a slot request of from: the <slot/>, or the error to
// answer.
func (m *Module) slot(ctx context.Context, from jid.JID, q *wire.Element) ([]wire.Node, error) {
	outcome := "granted"
	defer func() { count(ctx, m.slots, "outcome", outcome) }()
	if from.Localpart() == "" || from.Domainpart() != m.h.Domain().Domainpart() {
		outcome = "not-allowed"
		return nil, modules.StanzaError(stanza.Cancel, stanza.NotAllowed, "only accounts of "+m.h.Domain().String()+" may upload")
	}
	r, err := parseRequest(q)
	if err != nil {
		outcome = "bad-request"
		return nil, err
	}
	if r.size > m.opts.MaxFileBytes {
		outcome = "too-large"
		return nil, appError{
			se:  modules.StanzaError(stanza.Modify, stanza.NotAcceptable, fmt.Sprintf("File too large. The maximum file size is %d bytes", m.opts.MaxFileBytes)),
			app: wire.Elem(NS, "file-too-large").Add(wire.TextElem(NS, "max-file-size", strconv.FormatInt(m.opts.MaxFileBytes, 10))),
		}
	}
	if floor := m.opts.MinFreeDiskBytes; floor > 0 {
		if free, err := m.files.freeBytes(); err == nil && free-r.size < floor {
			outcome = "disk"
			return nil, modules.StanzaError(stanza.Wait, stanza.ResourceConstraint, "the server is short of disk space; try again later")
		}
	}
	tok, err := newToken()
	if err != nil {
		return nil, fmt.Errorf("upload: token: %w", err)
	}
	now := m.opts.Now()
	md := meta{Owner: from.Bare().String(), Name: r.name, Size: r.size, Type: r.typ, Created: now, SlotExpires: now.Add(m.opts.SlotLifetime)}
	err = m.files.reserve(tok, md, func(used int64, pending int, total int64) error {
		switch {
		case pending >= m.opts.MaxPendingSlots:
			outcome = "pending"
			return m.quotaError(fmt.Sprintf("You have %d slots not uploaded to yet: upload to them, or wait until they expire", pending), now.Add(m.opts.SlotLifetime))
		case m.opts.QuotaPerUserBytes > 0 && used+r.size > m.opts.QuotaPerUserBytes:
			outcome = "quota"
			return errQuota{fmt.Sprintf("Quota reached. You store %d of your %d bytes; this file needs %d", used, m.opts.QuotaPerUserBytes, r.size), md.Owner}
		case m.opts.QuotaTotalBytes > 0 && total+r.size > m.opts.QuotaTotalBytes:
			outcome = "quota"
			return errQuota{"Quota reached. The service stores all it may; try again later", ""}
		}
		return nil
	})
	if eq, ok := err.(errQuota); ok {
		// The retry stamp is looked up outside the index's lock.
		return nil, m.quotaError(eq.text, m.files.nextFree(eq.owner))
	}
	if err != nil {
		return nil, err
	}
	if err := m.files.write(tok, md); err != nil {
		_ = m.files.remove(tok)
		outcome = "error"
		return nil, err
	}
	u := m.base.JoinPath(tok, r.name).String()
	return []wire.Node{wire.Elem(NS, "slot").Add(wire.Elem(NS, "put", "url", u), wire.Elem(NS, "get", "url", u))}, nil
}

// errQuota is a quota refusal before its retry stamp is known: owner is
// the account whose files' expiry frees space, "" for anyone's.
type errQuota struct{ text, owner string }

func (e errQuota) Error() string { return e.text }

// quotaError is resource-constraint with text and, when retry is known,
// the <retry stamp/> of XEP-0363 §5: when space frees.
func (m *Module) quotaError(text string, retry time.Time) error {
	se := modules.StanzaError(stanza.Wait, stanza.ResourceConstraint, text)
	if retry.IsZero() {
		return se
	}
	return appError{se: se, app: wire.Elem(NS, "retry", "stamp", retry.UTC().Format(time.RFC3339))}
}
