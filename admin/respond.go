package admin

import (
	"bytes"
	"encoding/json"
	"mime"

	"github.com/valyala/fasthttp"
)

// writeJSON writes v as the JSON body with status. HTML characters are not
// escaped: the old server's bodies were JSON.stringify output, byte for
// byte what old clients compare against ("->" in the contract's messages,
// not "-\u003e"). The body is served as application/json, which browsers
// never render as HTML, so the escaping protected nothing.
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json; charset=utf-8")
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		ctx.SetBodyString(`{"message":"Internal Server Error"}`)
		return
	}
	ctx.SetBody(bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}))
}

type messageBody struct {
	Message string `json:"message"`
	Detail  string `json:"detail,omitempty"`
}

// writeMessage writes the contract's error shape {"message": "..."}.
func writeMessage(ctx *fasthttp.RequestCtx, status int, msg string) {
	writeJSON(ctx, status, messageBody{Message: msg})
}

// writeDetail adds a machine-readable reason beside a compatible message.
func writeDetail(ctx *fasthttp.RequestCtx, status int, msg, detail string) {
	writeJSON(ctx, status, messageBody{Message: msg, Detail: detail})
}

// jsonBody checks that a request declares no content type other than JSON
// (a missing one is tolerated: old clients omit it) and returns its body.
func jsonBody(ctx *fasthttp.RequestCtx) ([]byte, bool) {
	ct := ctx.Request.Header.ContentType()
	if len(ct) > 0 {
		mt, _, err := mime.ParseMediaType(string(ct))
		if err != nil || (mt != "application/json" && !(len(mt) > 5 && mt[len(mt)-5:] == "+json")) {
			writeMessage(ctx, fasthttp.StatusBadRequest, "Content-Type must be application/json")
			return nil, false
		}
	}
	return ctx.PostBody(), true
}
