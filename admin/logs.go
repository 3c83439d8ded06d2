package admin

import (
	"errors"
	"io"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/maxine-io/maxine/observe"
)

// logsRecent answers the old shape, {"logs": "<lines>"}: the recent log
// lines oldest first, joined by newlines, as the old server joined its
// last 100 lines. ?format=lines answers {"logs": [...]} instead, one line
// per element, newest first. ?limit=n keeps the n newest lines either way.
func (s *Server) logsRecent(ctx *fasthttp.RequestCtx, _ *requestInfo) {
	var lines []string
	if s.o.LogRing != nil {
		lines = s.o.LogRing.Recent(queryInt(ctx, "limit", 0))
	}
	switch string(ctx.QueryArgs().Peek("format")) {
	case "", "text":
		var b strings.Builder
		for i := len(lines) - 1; i >= 0; i-- {
			b.WriteString(lines[i])
			if i > 0 {
				b.WriteByte('\n')
			}
		}
		writeJSON(ctx, fasthttp.StatusOK, map[string]string{"logs": b.String()})
	case "lines":
		if lines == nil {
			lines = []string{}
		}
		writeJSON(ctx, fasthttp.StatusOK, map[string][]string{"logs": lines})
	default:
		writeMessage(ctx, fasthttp.StatusBadRequest, "format must be text or lines")
	}
}

func (s *Server) logsClear(ctx *fasthttp.RequestCtx, _ *requestInfo) {
	if s.o.LogRing != nil {
		s.o.LogRing.Clear()
	}
	writeMessage(ctx, fasthttp.StatusOK, "Recent logs cleared")
}

// logFilesPrefix is where log files are served, as the old server served
// its logs directory.
const logFilesPrefix = "/logs/"

// logsDownload answers the old shape: a map of each regular file of the
// log directory to the URL it is served at, {"Maxine-info.log":
// "/logs/Maxine-info.log"}. With ?file=<name> it sends that file instead
// (kept as an alias of /logs/<name>).
func (s *Server) logsDownload(ctx *fasthttp.RequestCtx, _ *requestInfo) {
	if name := ctx.QueryArgs().Peek("file"); len(name) > 0 {
		s.sendLogFile(ctx, string(name), true)
		return
	}
	files, err := observe.ListLogFiles(s.o.LogDir)
	if err != nil {
		s.o.Logger.Warn().Err(err).Msg("cannot list the log directory")
	}
	links := make(map[string]string, len(files))
	for _, f := range files {
		links[f.Name] = logFilesPrefix + f.Name
	}
	writeJSON(ctx, fasthttp.StatusOK, links)
}

// logFile serves GET /logs/{name}, the URLs logsDownload lists.
func (s *Server) logFile(ctx *fasthttp.RequestCtx, _ *requestInfo) {
	name, _ := ctx.UserValue("name").(string)
	s.sendLogFile(ctx, name, false)
}

// sendLogFile sends the log file called name. Names are checked by
// observe.OpenLogFile: no path separators, no "..", nothing that is not a
// regular file directly inside the log directory, nothing that resolves
// outside it. At most 64 MiB are sent.
func (s *Server) sendLogFile(ctx *fasthttp.RequestCtx, name string, attachment bool) {
	if s.o.LogDir == "" {
		writeMessage(ctx, fasthttp.StatusNotFound, "Log file not found")
		return
	}
	f, err := observe.OpenLogFile(s.o.LogDir, name)
	if err != nil {
		if errors.Is(err, observe.ErrBadLogName) {
			writeMessage(ctx, fasthttp.StatusBadRequest, "Invalid log file name")
			return
		}
		writeMessage(ctx, fasthttp.StatusNotFound, "Log file not found")
		return
	}
	defer f.Close()
	ctx.SetContentType("text/plain; charset=utf-8")
	if attachment {
		ctx.Response.Header.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	}
	if _, err := io.Copy(ctx.Response.BodyWriter(), io.LimitReader(f, 64<<20)); err != nil {
		ctx.Response.ResetBody()
		writeMessage(ctx, fasthttp.StatusInternalServerError, "Cannot read the log file")
	}
}
