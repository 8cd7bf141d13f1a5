package upload

import (
	"errors"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// bodyIdle bounds how long an upload may send nothing: a client that
// stalls does not hold its slot's partial file and a connection forever,
// while a large file on a slow link still gets through.
const bodyIdle = time.Minute

// The CORS answer of every request: the files are public to whoever has
// the URL (XEP-0363 §1), and web clients PUT from their own origin.
const (
	allowMethods = "GET, HEAD, PUT, OPTIONS"
	allowHeaders = "Content-Type"
)

// ServeHTTP implements http.Handler: the PUT of a slot's file, and GET
// and HEAD of stored files, at the public URL's path followed by the token
// and, optionally, the file name (which is not checked: the token alone
// names a file).
func (m *Module) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	rest, ok := strings.CutPrefix(r.URL.Path, m.base.Path)
	tok, _, _ := strings.Cut(rest, "/")
	if !ok || !validToken(tok) {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodOptions:
		// The browser's preflight of a PUT with a Content-Type.
		h.Set("Access-Control-Allow-Methods", allowMethods)
		h.Set("Access-Control-Allow-Headers", allowHeaders)
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPut:
		m.put(w, r, tok)
	case http.MethodGet, http.MethodHead:
		m.get(w, r, tok)
	default:
		h.Set("Allow", allowMethods)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// put stores the file of slot tok (XEP-0363 §6).
func (m *Module) put(w http.ResponseWriter, r *http.Request, tok string) {
	md, err := m.files.read(tok)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		http.Error(w, "no such slot", http.StatusForbidden)
		return
	case err != nil:
		m.log.Error("upload: read slot", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	case !md.Uploaded.IsZero():
		http.Error(w, "the file of this slot is stored already", http.StatusConflict)
		return
	case !m.opts.Now().Before(md.SlotExpires):
		http.Error(w, "the slot expired: ask for a new one", http.StatusForbidden)
		return
	case r.ContentLength < 0:
		http.Error(w, "Content-Length is required", http.StatusLengthRequired)
		return
	case r.ContentLength > md.Size:
		http.Error(w, "the body is longer than the slot's size "+strconv.FormatInt(md.Size, 10), http.StatusRequestEntityTooLarge)
		return
	case r.ContentLength < md.Size:
		http.Error(w, "the body is shorter than the slot's size "+strconv.FormatInt(md.Size, 10), http.StatusBadRequest)
		return
	}
	ct := r.Header.Get("Content-Type")
	if ct != "" && md.Type != "" && !sameType(ct, md.Type) {
		http.Error(w, "the content type is not the slot's "+md.Type, http.StatusUnsupportedMediaType)
		return
	}
	if md.Type == "" {
		md.Type = "application/octet-stream"
		if mt, params, err := mime.ParseMediaType(ct); err == nil && strings.Contains(mt, "/") {
			md.Type = mime.FormatMediaType(mt, params)
		}
	}
	// The partial file is made exclusively: of two PUTs at once, one
	// writes and the other is refused.
	part := m.files.partPath(tok)
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if errors.Is(err, fs.ErrExist) {
		http.Error(w, "an upload to this slot is under way", http.StatusConflict)
		return
	}
	if err != nil {
		m.log.Error("upload: create", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	status, err := receive(w, f, r, md.Size)
	if err == nil {
		// Link, not rename: it fails if the file exists, so that a
		// stored file is never replaced.
		err = os.Link(part, m.files.dataPath(tok))
		if errors.Is(err, fs.ErrExist) {
			status = http.StatusConflict
		}
	}
	_ = os.Remove(part)
	if err != nil {
		if status == 0 {
			m.log.Error("upload: store", "err", err)
			status = http.StatusInternalServerError
		}
		http.Error(w, http.StatusText(status), status)
		return
	}
	md.Uploaded = m.opts.Now()
	if err := m.files.write(tok, md); err != nil {
		_ = os.Remove(m.files.dataPath(tok))
		m.log.Error("upload: store", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	m.files.stored(tok, md)
	m.uploads.Add(r.Context(), 1)
	m.uploadedBytes.Add(r.Context(), md.Size)
	w.WriteHeader(http.StatusCreated)
}

// receive copies the body of r, size bytes, into f and closes f; on an
// error the status to answer (0: the server's fault).
func receive(w http.ResponseWriter, f *os.File, r *http.Request, size int64) (int, error) {
	dst := &fileWriter{f: f}
	n, err := io.Copy(dst, &idleReader{r: r.Body, rc: http.NewResponseController(w)})
	if err == nil && n != size {
		err = errors.New("upload: body shorter than declared")
	}
	if err != nil {
		_ = f.Close()
		switch {
		case errors.Is(dst.err, syscall.ENOSPC):
			return http.StatusInsufficientStorage, err
		case dst.err != nil:
			return 0, err
		}
		return http.StatusBadRequest, err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return 0, err
	}
	return 0, f.Close()
}

// fileWriter is a file that tells its write errors from its reader's.
type fileWriter struct {
	f   *os.File
	err error
}

func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

// idleReader is a request body whose read deadline moves on with each
// read, by bodyIdle.
type idleReader struct {
	r  io.Reader
	rc *http.ResponseController
}

func (b *idleReader) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(time.Now().Add(bodyIdle))
	return b.r.Read(p)
}

// get serves the file of tok.
func (m *Module) get(w http.ResponseWriter, r *http.Request, tok string) {
	md, err := m.files.read(tok)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			m.log.Error("upload: read file", "err", err)
		}
		http.NotFound(w, r)
		return
	}
	now := m.opts.Now()
	exp := m.files.expiry(md)
	if md.Uploaded.IsZero() || (!exp.IsZero() && !now.Before(exp)) {
		http.NotFound(w, r)
		return
	}
	f, err := os.Open(m.files.dataPath(tok))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	typ := servedType(md.Type)
	h := w.Header()
	h.Set("Content-Type", typ)
	h.Set("Content-Disposition", disposition(typ, md.Name))
	// Whatever the type, the file is never a page of this origin: no
	// script, no style, no frame, no sniffing into something that runs.
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; sandbox")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Access-Control-Expose-Headers", "Content-Disposition, ETag")
	h.Set("ETag", `"`+tok+`"`)
	age := int64(365 * 24 * 3600)
	if !exp.IsZero() {
		age = int64(exp.Sub(now) / time.Second)
	}
	// The bytes of a token never change; caches keep them no longer than
	// the file lives.
	h.Set("Cache-Control", "public, max-age="+strconv.FormatInt(age, 10)+", immutable")
	if r.Method == http.MethodGet {
		m.downloads.Add(r.Context(), 1)
	}
	http.ServeContent(w, r, "", md.Uploaded, f)
}

// sameType reports whether the media types a and b are the same, their
// parameters aside.
func sameType(a, b string) bool {
	ma, _, errA := mime.ParseMediaType(a)
	mb, _, errB := mime.ParseMediaType(b)
	return errA == nil && errB == nil && ma == mb
}

// activeTypes are media types a browser renders as a document that can
// run script in the origin serving it, or as script: they are served as
// application/octet-stream. image/svg+xml is not among them, so that
// clients show it; the Content-Security-Policy keeps its scripts from
// running.
var activeTypes = map[string]bool{
	"text/html": true, "application/xhtml+xml": true, "text/xml": true, "application/xml": true,
	"text/xsl": true, "application/xslt+xml": true, "application/rdf+xml": true, "application/mathml+xml": true,
	"text/javascript": true, "application/javascript": true, "application/x-javascript": true,
	"text/ecmascript": true, "application/ecmascript": true, "application/wasm": true,
	"application/x-shockwave-flash": true, "multipart/x-mixed-replace": true,
}

// servedType is the Content-Type a file of type t is served with.
func servedType(t string) string {
	mt, _, err := mime.ParseMediaType(t)
	if err != nil || activeTypes[mt] || strings.HasSuffix(mt, "+xml") && mt != "image/svg+xml" {
		return "application/octet-stream"
	}
	return t
}

// disposition is the Content-Disposition of a file of type t named name
// (RFC 6266): inline for what clients and browsers show (images, audio,
// video), attachment for the rest; the name both as an ASCII fallback and,
// exactly, in RFC 8187's encoding.
func disposition(t, name string) string {
	mt, _, _ := mime.ParseMediaType(t)
	kind := "attachment"
	if (strings.HasPrefix(mt, "image/") && mt != "image/svg+xml") || strings.HasPrefix(mt, "audio/") || strings.HasPrefix(mt, "video/") {
		kind = "inline"
	}
	var ascii, ext strings.Builder
	for _, r := range name {
		if r < 0x20 || r >= 0x7f || r == '"' || r == '\\' || r == '%' {
			ascii.WriteByte('_')
		} else {
			ascii.WriteRune(r)
		}
	}
	const hex = "0123456789ABCDEF"
	for _, b := range []byte(name) {
		if attrChar(b) {
			ext.WriteByte(b)
		} else {
			ext.WriteString("%" + string(hex[b>>4]) + string(hex[b&15]))
		}
	}
	return kind + `; filename="` + ascii.String() + `"; filename*=UTF-8''` + ext.String()
}

// attrChar reports whether b stands for itself in an RFC 8187 value.
func attrChar(b byte) bool {
	switch {
	case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", b) >= 0
}
