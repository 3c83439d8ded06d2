package admin

import (
	"errors"
	"io"

	"github.com/valyala/fasthttp"

	"github.com/maxine-io/maxine/observe"
)

func (s *Server) logsRecent(ctx *fasthttp.RequestCtx, _ *requestInfo) {
	var lines []string
	if s.o.LogRing != nil {
		lines = s.o.LogRing.Recent(queryInt(ctx, "limit", 0))
	}
	if lines == nil {
		lines = []string{}
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"logs": lines})
}

func (s *Server) logsClear(ctx *fasthttp.RequestCtx, _ *requestInfo) {
	if s.o.LogRing != nil {
		s.o.LogRing.Clear()
	}
	writeMessage(ctx, fasthttp.StatusOK, "Recent logs cleared")
}

// logsDownload lists the files of the log directory, or with ?file=<name>
// sends one of them. Names are checked by observe.OpenLogFile: no path
// separators, no "..", nothing that resolves outside the directory.
func (s *Server) logsDownload(ctx *fasthttp.RequestCtx, _ *requestInfo) {
	name := string(ctx.QueryArgs().Peek("file"))
	if s.o.LogDir == "" {
		if name != "" {
			writeMessage(ctx, fasthttp.StatusNotFound, "Log file not found")
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"files": []any{}})
		return
	}
	if name == "" {
		files, err := observe.ListLogFiles(s.o.LogDir)
		if err != nil {
			files = nil
		}
		if files == nil {
			files = []observe.LogFile{}
		}
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"files": files})
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
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	if _, err := io.Copy(ctx.Response.BodyWriter(), io.LimitReader(f, 64<<20)); err != nil {
		writeMessage(ctx, fasthttp.StatusInternalServerError, "Cannot read the log file")
	}
}
