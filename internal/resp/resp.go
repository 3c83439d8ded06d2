// Package resp sends one Redis command over a fresh connection and reads
// its reply as text. It is the bench's and the tests' way to set up and
// check a redis-server (PING, FLUSHALL, DBSIZE, HGET, INFO), never a
// client for load: Maxine itself talks to Redis through go-redis.
package resp

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Do sends args as one command to addr and returns the reply: simple
// strings, integers and bulk strings as they are, a nil bulk string as "",
// arrays (nested ones flattened) joined by "\n", an error reply as an
// error. The whole exchange is bounded by timeout.
func Do(addr string, timeout time.Duration, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(Encode(args...)); err != nil {
		return "", err
	}
	return Read(bufio.NewReader(conn))
}

// Encode returns args as a RESP array of bulk strings.
func Encode(args ...string) []byte {
	var cmd []byte
	cmd = append(cmd, '*')
	cmd = strconv.AppendInt(cmd, int64(len(args)), 10)
	cmd = append(cmd, "\r\n"...)
	for _, a := range args {
		cmd = append(cmd, '$')
		cmd = strconv.AppendInt(cmd, int64(len(a)), 10)
		cmd = append(cmd, "\r\n"...)
		cmd = append(cmd, a...)
		cmd = append(cmd, "\r\n"...)
	}
	return cmd
}

// Read reads one reply (see Do for its text form). Lengths are bounded
// (1 MiB bulk strings, 65,536 array elements) so a garbled stream cannot
// make it allocate without limit.
func Read(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("redis: empty reply line")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < -1 || n > 1<<20 {
			return "", fmt.Errorf("redis: bad bulk length %q", line)
		}
		if n == -1 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < -1 || n > 1<<16 {
			return "", fmt.Errorf("redis: bad array length %q", line)
		}
		parts := make([]string, 0, max(n, 0))
		for range n {
			s, err := Read(br)
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("redis: unexpected reply %q", line)
}
