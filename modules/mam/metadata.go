package mam

import (
	"context"
	"encoding/xml"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/storage"
)

// Archive metadata (XEP-0313 §5 "Archive metadata", part of
// urn:xmpp:mam:2#extended): an IQ get of <metadata xmlns='urn:xmpp:mam:2'/>
// on the archive's JID answers with the first and last messages of the
// archive, each by its id and its stamp, the ones a query gives them (the
// <result/> id, the XEP-0203 stamp of its forward):
//
//	<metadata xmlns='urn:xmpp:mam:2'>
//	  <start id='…' timestamp='…'/>
//	  <end id='…' timestamp='…'/>
//	</metadata>
//
// and with an empty <metadata/> when the archive holds nothing. It serves
// every archive that speaks this protocol, as the query code does: an
// account's (this package) and a room's (modules/muc).

// QueryFunc reads a page of one archive: the store's QueryArchive of an
// account or QueryRoomArchive of a room, bound to it.
type QueryFunc func(ctx context.Context, q storage.ArchiveQuery) ([]storage.ArchivedMessage, bool, error)

// Metadata is the answer to a metadata get on the archive query reads: the
// oldest message is the first page of one, the newest the last page of
// one, two reads of one message each. An archive that changes between the
// two (a message archived, the last one expired) may yield an end that is
// not the newest by the time the answer arrives, which any answer may; one
// found empty by either read is answered empty.
func Metadata(ctx context.Context, query QueryFunc) ([]xml.Token, error) {
	md := xml.StartElement{Name: xml.Name{Space: nsMAM, Local: "metadata"}}
	first, _, err := query(ctx, storage.ArchiveQuery{Max: 1})
	if err != nil {
		return nil, err
	}
	var last []storage.ArchivedMessage
	if len(first) > 0 {
		if last, _, err = query(ctx, storage.ArchiveQuery{Max: 1, Last: true}); err != nil {
			return nil, err
		}
	}
	if len(first) == 0 || len(last) == 0 {
		return []xml.Token{md, md.End()}, nil
	}
	toks := []xml.Token{md}
	for _, b := range []struct {
		local string
		m     storage.ArchivedMessage
	}{{"start", first[0]}, {"end", last[0]}} {
		el := xml.StartElement{Name: xml.Name{Space: nsMAM, Local: b.local}, Attr: []xml.Attr{
			{Name: xml.Name{Local: "id"}, Value: b.m.ID},
			{Name: xml.Name{Local: "timestamp"}, Value: modules.Stamp(b.m.Stamp)},
		}}
		toks = append(toks, el, el.End())
	}
	return append(toks, md.End()), nil
}

// metadata answers a metadata get on the account's own archive.
func (m *Module) metadata(ctx context.Context, user string) (xml.TokenReader, error) {
	toks, err := Metadata(ctx, func(ctx context.Context, q storage.ArchiveQuery) ([]storage.ArchivedMessage, bool, error) {
		return m.store.QueryArchive(ctx, user, q)
	})
	if err != nil {
		return nil, QueryError(err)
	}
	return modules.Tokens(toks), nil
}
