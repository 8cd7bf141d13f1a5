// Package upload is a XEP-0363 (HTTP File Upload, version 1.1) service on a
// domain of its own, upload.DOMAIN by default, as a modules.DomainHandler,
// with the HTTP listener that takes and serves the files. A client asks the
// service over XMPP for a slot, a pair of URLs, PUTs the file to the first
// and shares the second: in a message, a group chat, an avatar. That is how
// today's clients (Conversations, Dino, Gajim, Converse.js, Monal) send
// files, because it works with offline recipients, several devices, group
// chats and archives, where peer-to-peer transfers do not. Its behaviour
// follows Prosody's mod_http_file_share.
//
// What it does:
//
//   - disco (disco.go): the service (identity store/file, feature
//     urn:xmpp:http:upload:0) is listed among the server's disco#items; its
//     disco#info carries the XEP-0128 form with max-file-size.
//   - slots (slot.go): a request from a local account gets a slot whose
//     URL holds a random 192-bit token and the file name, or an error:
//     bad-request for a file name that is empty, longer than 255 bytes or
//     holds a slash, a backslash or a control character, for a size that
//     is not a non-negative integer or a content type that is not one;
//     file-too-large (modify/not-acceptable with <max-file-size/>) past
//     Options.MaxFileBytes; resource-constraint (wait, with a text, and a
//     <retry/> stamp when an expiry will free space) past the account's
//     quota, the service's total quota, the account's bound on slots not
//     uploaded to yet, or the free-space floor of the disk
//     (limits.min_free_disk_bytes). Quotas count the files stored and the
//     slots open.
//   - HTTP (http.go): a PUT within the slot's lifetime, of exactly the
//     declared size (Content-Length) and, if the slot named one, of the
//     same content type, stores the file (201); a second PUT is refused
//     (409), a wrong size with 400 (shorter) or 413 (longer), a wrong type
//     with 415, an unknown or expired slot with 403. GET and HEAD serve the
//     file with its type, a Content-Disposition (inline for images, audio
//     and video, attachment otherwise, with the file name as RFC 6266
//     writes it), Content-Length, Last-Modified, an ETag, and ranges.
//     Types a browser would run (HTML, XML, JavaScript) are served as
//     application/octet-stream, and every file comes with
//     Content-Security-Policy: default-src 'none' and
//     X-Content-Type-Options: nosniff, so that a file never acts as a page
//     of the service's origin. Unknown and expired files are 404; there is
//     no listing. CORS headers let web clients (Converse.js) PUT and GET
//     from the browser.
//   - storage (store.go): each file is two files in Options.Dir, the bytes
//     and a small JSON metadata file (owner, name, size, type, times),
//     written when the slot is given so that any replica sharing the
//     folder takes the PUT. A background sweeper removes files past
//     Options.ExpireAfter and slots never uploaded to, a batch at a time;
//     deleting an account removes its files (modules.AccountHook).
//
// The quotas are counted in memory, from the folder as found at start and
// the slots this process gave since: replicas that share the folder each
// count their own (docs/upload.md).
package upload
