// Package muc is a XEP-0045 (Multi-User Chat, version 1.34) group chat
// service on a domain of its own, conference.DOMAIN by default, as a
// modules.DomainHandler: the router hands it what local sessions send to
// the service and its rooms, and it answers through Host.Send, from room
// JIDs (room@service/nick) to the occupants' real full JIDs. Its
// behaviour follows what clients expect of Prosody's mod_muc.
//
// What it does:
//
//   - disco (disco.go): the service (identity conference/text) is listed
//     among the server's disco#items; its own items are the public rooms;
//     a room's disco#info has the muc_* features and the XEP-0128
//     muc#roominfo form.
//   - entering (presence.go, §7.2): a presence to room/nick creates a room
//     that does not exist. Its creator is its owner and the room is locked
//     (status 201) until the owner submits the configuration form, an empty
//     one accepting the defaults (an instant room, §10.1.2), or destroyed if
//     the owner cancels it. The newcomer gets the occupants' presence, its
//     own last (110; 100 in a non-anonymous room), the history (within the
//     join's <history/>, each message with a XEP-0203 delay from the room),
//     then the subject. Refusals: conflict (nickname of another user),
//     not-authorized (password), registration-required (members-only),
//     forbidden (banned), service-unavailable (full), item-not-found
//     (locked).
//   - one user, several sessions, one nickname: as Prosody, a second session
//     of the same account that enters with a nickname the account holds
//     joins that occupant instead of conflicting; every message reaches all
//     its sessions, the others see one occupant, whose presence is its
//     latest session's, and a session leaving alone hears its own
//     unavailable presence while the occupant stays. Such an occupant
//     cannot change its nickname (not-acceptable).
//   - leaving (§7.14): unavailable presence, or the end of the session (the
//     router delivers its unavailable presence to the rooms it had sent
//     presence to). A temporary room left empty is destroyed.
//   - messages (message.go): groupchat messages of occupants to everyone
//     (not-acceptable from non-occupants, forbidden from visitors), subject
//     changes (moderators, or participants if the configuration allows),
//     the history, private messages (to every session of the occupant, with
//     a muc#user <x/>; allowpm decides who may), mediated invitations (in a
//     members-only room by admins and owners, making the invitee a member).
//   - owners (config.go, §10): the muc#roomconfig form and its validation,
//     destruction with reason and alternate venue; changes are announced
//     (104, 172, 173), and making a room members-only removes non-members
//     (322).
//   - moderators, admins, owners (admin.go, §8, §9): kick (307), voice,
//     moderation, affiliations (ban 301, member, admin, owner, none; 321 in
//     a members-only room) and the lists, with the XEP's rules: no one acts
//     on a higher affiliation, admins and owners keep their roles, admins
//     manage members and outcasts, owners every affiliation, and the last
//     owner stays (conflict).
//   - requests to occupants (forward.go): the XEP-0410 self-ping to one's
//     own room JID is answered by the room while the session is in it
//     under that nickname, and not-acceptable otherwise; other requests go,
//     as Prosody passes them, to the occupant's latest session from the
//     sender's room JID under an id of the room's, and the answer (from that
//     session only) back from the room JID asked; a vCard or PEP request
//     goes to the user's bare JID. At most 20 per user and 1000 in all wait,
//     each 30 s (then recipient-unavailable).
//   - administration (commands.go): XEP-0050 commands on the service's JID
//     for the server's administrators (list-rooms, destroy-room,
//     set-affiliation, as an owner), run by the server's provider; see
//     docs/admin-commands.md.
//   - XEP-0421 occupant ids in every presence and message from an occupant:
//     an HMAC of the room and the user's bare JID with a random key the
//     service makes once and keeps in the store's settings, stable per room
//     and user across restarts, unguessable outside; ids a client put in its
//     stanzas are removed.
//   - persistent rooms (persist.go): a persistent room is in the store
//     (storage.Rooms, both backends) with its configuration, affiliations
//     and subject, written when a change is decided and before anyone sees
//     it; a change the store refuses is not made (resource-constraint on a
//     full disk, internal-server-error otherwise). At start the stored
//     rooms come back, without occupants; a temporary room does not, and a
//     destroyed room, or one made temporary, leaves the store.
//   - XEP-0313 archives of rooms (archive.go): a persistent room with
//     muc#roomconfig_enablearchiving (on by default, as Prosody) archives
//     its groupchat messages with a body and its subject changes
//     (storage.RoomArchive), each relayed with a XEP-0359 stanza id by the
//     room; queries on the room's JID, read and answered by modules/mam's
//     code (form, with an occupant's room JID, start, end, before-id,
//     after-id, ids, result set paging, fin), by who may enter (members in
//     a members-only room, never outcasts), real JIDs shown to who may see
//     them. The join history of a stored room comes back from its archive
//     after a restart.
//   - XEP-0425 moderation (moderate.go, version 0.3,
//     urn:xmpp:message-moderate:1 with urn:xmpp:message-retract:1; the 0.2
//     form, urn:xmpp:message-moderate:0 in a XEP-0422 <apply-to/>, which
//     the clients of Debian 12 send, is accepted and answered too): a
//     moderator retracts a message by its stanza id; every occupant is
//     told, the archive keeps a tombstone in its place, the history drops
//     it. forbidden for others, item-not-found for an unknown id.
//
// Bounds (Options): rooms of the service and per creating user (stored
// rooms among them), occupants per room (a room's maxusers is within it;
// owners and admins enter a full room up to the service's bound, as
// §7.2.9 asks), sessions per nickname,
// history length, subject and message size, affiliations per room, items
// of an admin request, messages of a room's archive and how long they are
// kept (expired in the background). A room past a bound is refused with
// resource-constraint (service-wide) or not-allowed (per user, §10.1.1); a
// subject or message too long with policy-violation (RFC 6120 §8.3.3.12:
// a local policy, here a size), with a text giving the limit.
//
// What a room is apart from its occupants is State, a struct of exported
// fields with JSON tags: the store keeps it as that JSON, which the store
// does not read (a field added here needs no migration). Rooms across the
// replicas of a cluster are not shared: each replica loads the stored
// rooms at its start and then goes its own way (disable the service in a
// cluster).
//
// Concurrency: the module's map of rooms has a mutex, and each room one that
// covers its changes and the stanzas they send, so that every occupant sees
// a room's events in one order; Host.Send queues without waiting on
// clients' sockets, and never calls back into the module.
package muc
