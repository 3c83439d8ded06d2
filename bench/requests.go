package main

import (
	"math/rand/v2"
	"strconv"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// getRequests sends GET http://addr<path> every time.
func getRequests(addr, path string) RequestFactory {
	url := "http://" + addr + path
	return func(int) RequestFunc {
		return func(req *fasthttp.Request, _ uint64) { req.SetRequestURI(url) }
	}
}

// discoverRequests sends redirect discoveries for service <prefix><k>, k
// drawn uniformly from [0, services) by each worker's own generator.
func discoverRequests(addr, servicePrefix string, services int) RequestFactory {
	prefix := "http://" + addr + "/api/maxine/serviceops/discover?endPoint=/x&serviceName=" + servicePrefix
	return func(w int) RequestFunc {
		buf := make([]byte, 0, len(prefix)+12)
		rng := rand.New(rand.NewPCG(uint64(w)+1, 0x6d617869))
		return func(req *fasthttp.Request, _ uint64) {
			k := 0
			if services > 1 {
				k = rng.IntN(services)
			}
			buf = strconv.AppendInt(append(buf[:0], prefix...), int64(k), 10)
			req.SetRequestURIBytes(buf)
		}
	}
}

// regShape maps a registration number k to its service and node, so
// that load workers can render registrations without allocating.
type regShape struct {
	servicePrefix string
	services      uint64 // service = k % services (or k / perService when perService > 0)
	perService    uint64
	nodePrefix    string
	nodes         uint64 // node = k % nodes when > 0 (re-heartbeats), else k
	port          func(k uint64) int
	timeOut       int
}

func (s regShape) appendBody(dst []byte, k uint64) []byte {
	node := k
	if s.nodes > 0 {
		node = k % s.nodes
	}
	svc := node % s.services
	if s.perService > 0 {
		svc = node / s.perService
	}
	dst = append(dst, `{"serviceName":"`...)
	dst = append(dst, s.servicePrefix...)
	dst = strconv.AppendUint(dst, svc, 10)
	dst = append(dst, `","nodeName":"`...)
	dst = append(dst, s.nodePrefix...)
	dst = strconv.AppendUint(dst, node, 10)
	dst = append(dst, `","hostName":"127.0.0.1","port":`...)
	dst = strconv.AppendInt(dst, int64(s.port(node)), 10)
	dst = append(dst, `,"timeOut":`...)
	dst = strconv.AppendInt(dst, int64(s.timeOut), 10)
	dst = append(dst, `,"weight":1}`...)
	return dst
}

// registerRequests sends registrations numbered by a counter shared by
// all workers, starting at first, so every number is used exactly once.
func registerRequests(addr string, shape regShape, first uint64) RequestFactory {
	var next atomic.Uint64
	next.Store(first)
	return func(int) RequestFunc {
		var body []byte
		return func(req *fasthttp.Request, _ uint64) {
			k := next.Add(1) - 1
			body = shape.appendBody(body[:0], k)
			fillRegister(req, addr, body)
		}
	}
}

// portFor is the port of registered node k: below Linux's ephemeral range
// (32768 and up), where every listener of the run (maxine's own admin and
// gateway ports among them) gets its free port, so that no node claims
// one of maxine's listeners, which maxine refuses with 403.
func portFor(k uint64) int { return 1024 + int(k%31744) }
