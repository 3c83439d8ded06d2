package admin

import (
	"encoding/json"
	"mime"

	"github.com/valyala/fasthttp"
)

// writeJSON writes v as the JSON body with status.
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json; charset=utf-8")
	b, err := json.Marshal(v)
	if err != nil {
		ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		ctx.SetBodyString(`{"message":"Internal Server Error"}`)
		return
	}
	ctx.SetBody(b)
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
